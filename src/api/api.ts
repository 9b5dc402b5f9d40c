// The control API: Toxiproxy's REST API, route for route and byte for byte where clients look, so
// that existing Toxiproxy clients drive coquin unchanged. node:http only; every handler is a thin
// call into the registry. Mutations run one at a time (a promise queue), reads never wait on them,
// and no handler waits on proxy traffic.
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Registry, ProxySpec } from '../control/registry.js'
import { bindReason, formatAddress, triedAddress, type Proxy } from '../datapath/proxy.js'
import type { FaultSpec } from '../faults/fault.js'
import type { Logger } from '../core/log.js'
import { scenarioFromBody } from '../control/scenario.js'
import { openLinks, parseEventQuery, type EventQuery, type Journal, type Subscription } from '../observe/journal.js'
import {
  ApiTimeoutError, BodyTooLargeError, CoquinError, InternalError, InvalidRequestError, ListenError, MethodNotAllowedError, NoCertificateError, UnauthorizedError,
} from '../core/errors.js'

/** Request bodies above this get a 413 (Toxiproxy has no limit; no legitimate body comes near it). */
export const MAX_BODY_BYTES = 1 << 20
/** JSON nesting above this is refused before parsing: deep values would overflow the stack later. */
const MAX_DEPTH = 256
/** Toxiproxy wraps every handler in a 25 s http.TimeoutHandler. */
const REQUEST_TIMEOUT_MS = 25_000

export interface ApiOptions {
  /** Shown by GET /version. */
  version: string
  /** When set, every route but /healthz, /version and /metrics needs `Authorization: Bearer <token>`. */
  token?: string
  log?: Logger
  /** Serves GET /metrics; without it the route does not exist (404), as Toxiproxy without -proxy-metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>
  /** How long one request may take before a 503 (a hung mutation then releases the queue). */
  timeoutMs?: number
  /** Serves GET /events (coquin's journal); without it the route does not exist (404). */
  journal?: Journal
}

interface Reply {
  status: number
  body?: string
  type?: string
  headers?: Record<string, string>
  /** Takes over the response (a long-lived stream) instead of sending a body. */
  stream?: (res: http.ServerResponse) => void
}

interface Ctx {
  params: string[]
  /** The URL's query parameters. */
  query: URLSearchParams
  /** The request body as JSON: `{}` when empty; 400 when malformed. Parsed on demand, so 404s come first. */
  body(): unknown
}

interface Method {
  run(ctx: Ctx): Reply | Promise<Reply>
  /** Runs in the mutation queue. */
  mutates?: boolean
}

interface Route {
  path: string[]          // segments; '*' captures one
  methods: Record<string, Method>
  /** Reachable without the token. */
  open?: boolean
}

const JSON_TYPE = 'application/json'
const TEXT_TYPE = 'text/plain; charset=utf-8'

const json = (status: number, value: unknown): Reply => ({ status, body: JSON.stringify(value), type: JSON_TYPE })
const empty = (status: number): Reply => ({ status })
/** Go's http.Error: text/plain, nosniff, a trailing newline. */
const text = (status: number, message: string): Reply =>
  ({ status, body: `${message}\n`, type: TEXT_TYPE, headers: { 'X-Content-Type-Options': 'nosniff' } })
const notFound = (): Reply => text(404, '404 page not found')

/** Toxiproxy's error body, `{"error":...,"status":...}` + newline; `code` is coquin's stable error code. */
function errorReply(err: CoquinError, extra: Record<string, unknown> = {}): Reply {
  const body = { error: err.message, status: err.statusCode, code: err.code, ...(err.detail !== undefined ? { detail: err.detail } : {}), ...extra }
  return { status: err.statusCode, body: `${JSON.stringify(body)}\n`, type: JSON_TYPE }
}

export function createApi(registry: Registry, opts: ApiOptions): http.RequestListener & { endStreams(): void } {
  const log = (opts.log ?? registry.log).child({ component: 'api' })
  const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS
  const serial = queue(log)
  const authorized = opts.token === undefined ? () => true : bearerCheck(opts.token)

  const created = (p: Proxy, via: string) =>
    log.info({ proxy: p.name, listen: p.address, upstream: p.upstream, enabled: p.enabled, toxics: p.faults.length, via }, 'proxy created')

  const routes: Route[] = [
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
    {
      path: ['partitions'],                          // coquin's own: src/control/partition.ts
      methods: {
        GET: { run: () => json(200, registry.partitions.list().map(p => p.toJSON())) },
        POST: { mutates: true, run: ({ body }) => json(201, registry.partitions.cut(body()).toJSON()) },
      },
    },
    {
      path: ['partitions', '*'],
      methods: {
        GET: { run: ({ params: [name] }) => json(200, registry.partitions.get(name!).toJSON()) },
        DELETE: { mutates: true, run: ({ params: [name] }) => { registry.partitions.heal(name!); return empty(204) } },
      },
    },
    {
      path: ['scenarios'],                           // coquin's own: src/control/scenario.ts
      methods: {
        GET: { run: () => json(200, registry.scenarios.list().map(r => r.toJSON())) },
        POST: {
          mutates: true,
          run({ body }) {
            const run = registry.scenarios.start(scenarioFromBody(body(), registry.catalog.behaviors))
            return { ...json(201, run.toJSON()), headers: { Location: `/scenarios/${encodeURIComponent(run.id)}` } }
          },
        },
      },
    },
    {
      path: ['scenarios', '*'],
      methods: {
        GET: { run: ({ params: [id] }) => json(200, registry.scenarios.get(id!).toJSON()) },
        DELETE: { mutates: true, async run({ params: [id] }) { await registry.scenarios.stop(id!); return empty(204) } },
      },
    },
    {
      path: ['version'],
      open: true,
      // Toxiproxy's exact bytes: a space after the colon, a trailing newline, this content type.
      methods: { GET: { run: () => ({ status: 200, body: `{"version": ${JSON.stringify(opts.version)}}\n`, type: 'application/json;charset=utf-8' }) } },
    },
    {
      path: ['healthz'],
      open: true,
      methods: { GET: { run: () => json(200, { status: 'ok' }) } },
    },
  ]
  const journal = opts.journal
  /** Open `GET /events?follow=1` responses, each with its way to end. */
  const streams = new Map<http.ServerResponse, () => void>()
  if (journal) {
    routes.push({
      path: ['events'],                              // coquin's own: the journal
      methods: {
        GET: {
          run({ query }) {
            let q: EventQuery
            try { q = parseEventQuery(query) } catch (err) { throw new InvalidRequestError((err as Error).message) }
            const follow = query.get('follow')
            if (follow === '1' || follow === 'true') return { status: 200, stream: res => followEvents(journal, res, q) }
            return {
              ...json(200, journal.query(q)),
              headers: { 'X-Coquin-Journal-Oldest': String(journal.oldestId), 'X-Coquin-Journal-Last': String(journal.lastId) },
            }
          },
        },
      },
    })
  }

  /**
   * NDJSON, one event per line, each written as it comes. The journal holds what the response cannot
   * take yet (write() said false) in this follower's bounded backlog until 'drain'; past the bound the
   * oldest are dropped and a `{"type":"dropped",...}` line says how many. Ends when the client goes away,
   * after `limit` events, or when the API closes.
   */
  function followEvents(journal: Journal, res: http.ServerResponse, q: EventQuery): void {
    res.writeHead(200, {
      'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'close',
    })
    res.flushHeaders()
    let sub: Subscription | undefined
    let sent = 0
    let done = false
    const end = () => {
      done = true
      streams.delete(res)
      sub?.close()
      if (!res.writableEnded && !res.destroyed) res.end()
    }
    streams.set(res, end)
    res.on('close', end)
    const filter = { ...(q.proxy ? { proxy: q.proxy } : {}), ...(q.type ? { type: q.type } : {}), ...(q.since !== undefined ? { since: q.since } : {}) }
    sub = journal.subscribe({ filter }, item => {
      if (done || res.destroyed) return false
      const ok = res.write(`${JSON.stringify(item)}\n`)
      if (item.type !== 'dropped' && q.limit !== undefined && ++sent >= q.limit) { done = true; if (sub) end(); return false }
      return ok
    })
    if (done || q.limit === 0) { end(); return }
    res.on('drain', () => sub?.resume())
  }

  const metrics = opts.metrics
  if (metrics) {
    routes.push({
      path: ['metrics'],
      open: true,
      methods: {
        GET: {
          async run() {
            const m = await metrics()
            return { status: 200, body: m.body, type: m.contentType }
          },
        },
      },
    })
  }

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

  async function dispatch(req: http.IncomingMessage): Promise<Reply | null> {
    const segments = pathSegments(req.url ?? '/')
    const found = segments && match(routes, segments)
    if (!found) return notFound()
    const { route, params } = found
    const method = Object.hasOwn(route.methods, req.method ?? '') ? route.methods[req.method!] : undefined
    if (!method) {
      return { ...errorReply(new MethodNotAllowedError()), headers: { Allow: Object.keys(route.methods).join(', ') } }
    }
    // Toxiproxy's CSRF guard: browsers (all Mozilla/...) may not drive the API. The body is parsed as
    // JSON whatever its Content-Type, so a page's form POST would otherwise be a valid request.
    if ((req.headers['user-agent'] ?? '').startsWith('Mozilla/')) return text(403, 'User agent not allowed')
    if (!route.open && !authorized(req.headers.authorization)) {
      return { ...errorReply(new UnauthorizedError()), headers: { 'WWW-Authenticate': 'Bearer' } }
    }
    let raw: Buffer | null = null
    if (req.method === 'POST' || req.method === 'PATCH') {
      try {
        raw = await readBody(req, MAX_BODY_BYTES)
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          return { ...errorReply(err), headers: { Connection: 'close' } }
        }
        return null                                // the client went away mid-body: nobody to answer
      }
    }
    let parsed: { value: unknown } | undefined
    const ctx: Ctx = { params, query: queryOf(req.url ?? ''), body: () => (parsed ??= { value: parseBody(raw) }).value }
    const run = async () => {
      try {
        const reply = await method.run(ctx)
        // A refusing fault opens or closes a listener: answer once it has (a client's next connect sees it).
        if (method.mutates) await Promise.all([...registry.proxies.values()].map(p => p.listenerSettled))
        return reply
      } catch (err) {
        if (err instanceof CoquinError) return errorReply(err)
        throw err
      }
    }
    return method.mutates ? serial(run, timeoutMs) : deadline(run(), timeoutMs)
  }

  const listener: http.RequestListener = (req, res) => {
    const id = randomUUID()
    const started = performance.now()
    res.setHeader('X-Coquin-Request-Id', id)
    res.setHeader('X-Toxiproxy-Request-Id', id)
    req.on('error', () => {})                       // aborted uploads: the 'close' path handles them
    res.on('error', () => {})
    const finish = (reply: Reply | null) => {
      if (reply?.stream) { if (!res.headersSent && !res.destroyed) reply.stream(res) }
      else if (reply) send(res, reply)
      log.debug({ req: id, method: req.method, url: req.url, status: reply?.status, ms: Math.round(performance.now() - started) }, 'api request')
    }
    dispatch(req).then(finish, (err: unknown) => {
      if (err instanceof CoquinError) return finish(errorReply(err))   // the timeout
      log.error({ err, req: id, method: req.method, url: req.url }, 'api request failed')
      const message = err instanceof Error ? err.message : String(err)
      finish(errorReply(new InternalError(message)))
    }).catch(err => {
      log.error({ err, req: id }, 'api response failed')
      res.destroy()
    })
  }
  return Object.assign(listener, { endStreams: () => { for (const end of [...streams.values()]) end() } })
}

export async function startApi(registry: Registry, opts: ApiOptions & { host?: string; port?: number }): Promise<{ server: http.Server; url: string; close(): Promise<void> }> {
  const api = createApi(registry, opts)
  const server = http.createServer({
    requestTimeout: 15_000,                         // Toxiproxy: read 15 s, write 30 s, idle 60 s
    headersTimeout: 15_000,
    keepAliveTimeout: 60_000,
  }, api)
  // Connections that have not sent a request yet (fetch opens spares, e.g. after an aborted stream):
  // Node's closeIdleConnections() leaves them, so close() would wait its full grace period for them.
  const unused = new Set<Socket>()
  server.on('connection', s => { unused.add(s); s.once('close', () => unused.delete(s)) })
  server.on('request', (req: http.IncomingMessage) => { unused.delete(req.socket) })
  const host = opts.host ?? '127.0.0.1', port = opts.port ?? 8474
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port }, () => { server.off('error', reject); resolve() })
    })
  } catch (err) {
    throw new ListenError(triedAddress(err as NodeJS.ErrnoException, { host, port }), bindReason(err as NodeJS.ErrnoException)).because(err)
  }
  const a = server.address() as AddressInfo
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  ;(opts.log ?? registry.log).debug({ url }, 'api listening')
  let closing: Promise<void> | undefined
  return {
    server,
    url,
    /** Stops accepting; in-flight requests get 2 s to finish, then every connection goes. Idempotent. */
    close() {
      closing ??= (async () => {
        const closed = once(server, 'close')
        api.endStreams()                            // followers of /events: their responses end, their connections close
        server.close()
        server.closeIdleConnections()
        for (const s of unused) s.destroy()
        const timer = setTimeout(() => server.closeAllConnections(), 2_000)
        timer.unref()
        await closed
        clearTimeout(timer)
      })()
      return closing
    },
  }
}

// Routing ----------------------------------------------------------------------------------------

/** The query string's parameters (malformed escapes are kept as they are). */
function queryOf(url: string): URLSearchParams {
  const q = url.indexOf('?')
  if (q < 0) return new URLSearchParams()
  const h = url.indexOf('#', q)
  return new URLSearchParams(url.slice(q + 1, h < 0 ? undefined : h))
}

/** The path's segments, percent-decoded; null when it does not start with '/' or does not decode. */
function pathSegments(url: string): string[] | null {
  let path = url
  const q = path.search(/[?#]/)
  if (q >= 0) path = path.slice(0, q)
  if (!path.startsWith('/')) return null
  try {
    return path.slice(1).split('/').map(decodeURIComponent)
  } catch {
    return null
  }
}

function match(routes: Route[], segments: string[]): { route: Route; params: string[] } | null {
  for (const route of routes) {
    if (route.path.length !== segments.length) continue
    const params: string[] = []
    let ok = true
    for (const [i, p] of route.path.entries()) {
      const s = segments[i]!
      if (p === '*') {
        if (s === '') { ok = false; break }
        params.push(s)
      } else if (p !== s) { ok = false; break }
    }
    if (ok) return { route, params }
  }
  return null
}

// Bodies -----------------------------------------------------------------------------------------

/** Reads the whole body, refusing more than `limit` bytes; rejects if the client goes away. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (declared > limit) return Promise.reject(new BodyTooLargeError(limit))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = () => { req.off('data', onData); req.off('end', onEnd); req.off('close', onClose) }
    const onData = (c: Buffer) => {
      size += c.length
      if (size > limit) { done(); chunks.length = 0; reject(new BodyTooLargeError(limit)); return }
      chunks.push(c)
    }
    const onEnd = () => { done(); resolve(Buffer.concat(chunks)) }
    const onClose = () => { done(); reject(new Error('request aborted')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
  })
}

/** JSON whatever the Content-Type (toxiproxy-java sends none); an empty body is `{}`. */
function parseBody(raw: Buffer | null): unknown {
  if (raw === null) return {}
  const s = raw.toString('utf8')
  if (s.trim() === '') return {}
  if (depth(s) > MAX_DEPTH) throw new InvalidRequestError('bad request body: exceeded max depth')
  try {
    return JSON.parse(s, wellFormed)
  } catch (err) {
    throw new InvalidRequestError(`bad request body: ${(err as Error).message}`)
  }
}

/**
 * Lone surrogates (`"\ud800"`) become U+FFFD, as Go's encoding/json does: a proxy named with one could
 * never be addressed again, since no URL encodes it.
 */
function wellFormed(_key: string, v: unknown): unknown {
  return typeof v === 'string' && /[\ud800-\udfff]/.test(v)
    ? v.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    : v
}

/** Deepest nesting of [ and { outside strings, in one pass over the text. */
function depth(s: string): number {
  let d = 0, max = 0, inString = false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (inString) {
      if (c === 92) i++                                   // backslash: skip the escaped char
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) { if (++d > max) max = d }
    else if (c === 93 || c === 125) d--
  }
  return max
}

function objectBody(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidRequestError(`${what} must be an object`)
  return value as Record<string, unknown>
}

// Plumbing ---------------------------------------------------------------------------------------

function send(res: http.ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return
  res.statusCode = reply.status
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v)
  if (reply.body === undefined) { res.end(); return }
  res.setHeader('Content-Type', reply.type ?? JSON_TYPE)
  res.setHeader('Content-Length', Buffer.byteLength(reply.body))
  res.end(reply.body)
}

/** Compares the bearer token in constant time (both sides hashed, so lengths don't leak either). */
function bearerCheck(token: string): (header: string | undefined) => boolean {
  const want = createHash('sha256').update(token).digest()
  return header => {
    const m = /^Bearer[ \t]+(.*)$/i.exec(header ?? '')
    const got = createHash('sha256').update(m?.[1]?.trim() ?? '').digest()
    return timingSafeEqual(want, got) && m !== null
  }
}

/** Settles with `p`, or rejects with a 503 after `ms` (the work goes on, its result is dropped). */
function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new ApiTimeoutError(ms)), ms) }),
  ])
}

/**
 * One mutation at a time, in arrival order, so that concurrent creates and deletes cannot race on a
 * name. A job that times out while waiting never runs; one that hangs while running releases the
 * queue at its deadline (and is logged), so one stuck request cannot wedge the API.
 */
function queue(log: Logger) {
  let tail: Promise<unknown> = Promise.resolve()
  return <T>(job: () => Promise<T>, ms: number): Promise<T> => new Promise<T>((resolve, reject) => {
    let state: 'queued' | 'running' | 'over' = 'queued'
    let release!: () => void
    const released = new Promise<void>(r => { release = r })
    const timer = setTimeout(() => {
      if (state === 'running') log.warn({ ms }, 'api request still running at its deadline: releasing the queue')
      state = 'over'
      release()
      reject(new ApiTimeoutError(ms))
    }, ms)
    tail = tail.then(() => {
      if (state === 'over') return undefined
      state = 'running'
      const run = job().then(resolve, reject).finally(() => { clearTimeout(timer); state = 'over' })
      return Promise.race([run, released])
    })
  })
}
