// Toxiproxy's routes: proxies, populate, toxics, reset — and coquin's per-proxy extras (links, certificate).
import type { Registry, ProxySpec } from '../../control/registry.js'
import type { Proxy } from '../../datapath/proxy.js'
import type { FaultSpec } from '../../faults/fault.js'
import type { Logger } from '../../core/log.js'
import { openLinks } from '../../observe/journal.js'
import { CoquinError, InvalidRequestError, NoCertificateError } from '../../core/errors.js'
import { empty, errorReply, json, objectBody, type Ctx, type Reply, type Route } from '../http.js'

export function proxyRoutes(registry: Registry, log: Logger): Route[] {
  const created = (p: Proxy, via: string) =>
    log.info({ proxy: p.name, listen: p.address, upstream: p.upstream, enabled: p.enabled, toxics: p.faults.length, via }, 'proxy created')

  /** Toxiproxy's update: listen, upstream and enabled merge into the proxy; the name never changes. */
  async function updateProxy({ params: [name], body }: Ctx): Promise<Reply> {
    const p = registry.get(name!)
    const b = objectBody(body(), 'proxy')
    const patch: { listen?: string; upstream?: string; enabled?: boolean } = {}
    for (const field of ['listen', 'upstream'] as const) {
      const v = b[field]
      if (v === undefined || v === null || v === '') continue
      if (typeof v !== 'string') throw new InvalidRequestError(`${field} must be a string`)
      patch[field] = v
    }
    if (b.enabled !== undefined && b.enabled !== null) {
      if (typeof b.enabled !== 'boolean') throw new InvalidRequestError('enabled must be a boolean')
      patch.enabled = b.enabled
    }
    const from = { listen: p.address, upstream: p.upstream, enabled: p.enabled }
    await p.update(patch)            // a failed (re)start leaves the proxy disabled, never enabled and deaf
    log.info({ proxy: p.name, from, to: { listen: p.address, upstream: p.upstream, enabled: p.enabled } }, 'proxy updated')
    return json(200, p.toJSON())
  }

  /** Toxiproxy's toxic update: attributes merge, toxicity replaces; name, type and stream are ignored. */
  function updateToxic({ params: [name, toxic], body }: Ctx): Reply {
    registry.get(name!).fault(toxic!)              // 404s before 400s, as Toxiproxy
    const b = objectBody(body(), 'toxic')
    const f = registry.updateFault(name!, toxic!, { attributes: b.attributes, toxicity: b.toxicity ?? undefined })
    return json(200, f.toJSON())                   // the proxy logs 'toxic updated'
  }

  return [
    {
      path: ['proxies'],
      methods: {
        GET: { run: () => json(200, Object.fromEntries([...registry.proxies].map(([name, p]) => [name, p.toJSON()]))) },
        POST: {
          mutates: true,
          async run(ctx) {
            const p = await registry.create(ctx.body() as ProxySpec)
            created(p, 'api')
            return json(201, p.toJSON())
          },
        },
      },
    },
    {
      path: ['populate'],
      methods: {
        POST: {
          mutates: true,
          async run(ctx) {
            const before = new Map(registry.proxies)
            const logNew = (list: Proxy[]) => { for (const p of list) if (before.get(p.name) !== p) created(p, 'populate') }
            try {
              const list = await registry.populate(ctx.body())
              logNew(list)
              return json(201, { proxies: list.map(p => p.toJSON()) })
            } catch (err) {
              const made = (err as { created?: Proxy[] }).created
              if (made) logNew(made)
              if (!(err instanceof CoquinError)) throw err
              return errorReply(err, { proxies: made && made.length > 0 ? made.map(p => p.toJSON()) : null })
            }
          },
        },
      },
    },
    {
      path: ['proxies', '*'],
      methods: {
        GET: { run: ({ params: [name] }) => json(200, registry.get(name!).toJSON()) },
        POST: { mutates: true, run: ctx => updateProxy(ctx) },
        PATCH: { mutates: true, run: ctx => updateProxy(ctx) },
        DELETE: {
          mutates: true,
          async run({ params: [name] }) {
            await registry.delete(name!)
            log.info({ proxy: name }, 'proxy deleted')
            return empty(204)
          },
        },
      },
    },
    {
      path: ['proxies', '*', 'toxics'],
      methods: {
        GET: { run: ({ params: [name] }) => json(200, registry.get(name!).toxicsJSON()) },
        POST: {
          mutates: true,
          run({ params: [name], body }) {
            const p = registry.get(name!)
            const f = p.addFault(registry.makeFault(body() as FaultSpec))   // the proxy logs 'toxic added'
            return json(200, f.toJSON())
          },
        },
      },
    },
    {
      path: ['proxies', '*', 'toxics', '*'],
      methods: {
        GET: { run: ({ params: [name, toxic] }) => json(200, registry.get(name!).fault(toxic!).toJSON()) },
        POST: { mutates: true, run: ctx => updateToxic(ctx) },
        PATCH: { mutates: true, run: ctx => updateToxic(ctx) },
        DELETE: {
          mutates: true,
          run({ params: [name, toxic] }) {
            registry.get(name!).removeFault(toxic!)
            return empty(204)
          },
        },
      },
    },
    {
      path: ['proxies', '*', 'links'],                // coquin's own: the open links, with bytes, idle time and faults
      methods: { GET: { run: ({ params: [name] }) => json(200, openLinks(registry.get(name!))) } },
    },
    {
      path: ['proxies', '*', 'certificate'],          // coquin's own: the certificate it shows clients, for them to trust
      methods: {
        GET: {
          run({ params: [name] }) {
            const cert = registry.get(name!).tls?.listen?.cert
            if (!cert) throw new NoCertificateError()
            return { status: 200, body: cert, type: 'application/x-pem-file' }
          },
        },
      },
    },
    {
      path: ['reset'],
      methods: {
        POST: {
          mutates: true,
          async run() {
            await registry.reset()
            log.info({ proxies: registry.proxies.size }, 'proxies reset')
            return empty(204)
          },
        },
      },
    },
  ]
}
