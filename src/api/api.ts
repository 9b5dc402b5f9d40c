// The control API: Toxiproxy's REST API, route for route and byte for byte where clients look, so
// that existing Toxiproxy clients drive coquin unchanged. node:http only; every handler is a thin
// call into the registry. Mutations run one at a time (a promise queue), reads never wait on them,
// and no handler waits on proxy traffic.
//   http.ts            replies, routing, bodies, the bearer check, deadlines, the mutation queue
//   routes/proxies.ts  Toxiproxy's routes (proxies, populate, toxics, reset) and per-proxy extras
//   routes/control.ts  partitions and scenarios
//   routes/events.ts   the journal (GET /events, ?follow=1)
//   routes/meta.ts     version, healthz, metrics, types
//   routes/ui.ts       the web dashboard (/ui) and its guarded way into these routes (/ui/api/...)
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes, randomUUID } from 'node:crypto'
import type { Registry } from '../control/registry.js'
import { bindReason, triedAddress } from '../datapath/proxy.js'
import type { Logger } from '../core/log.js'
import type { Journal } from '../observe/journal.js'
import { BodyTooLargeError, CoquinError, InternalError, ListenError, MethodNotAllowedError, UnauthorizedError } from '../core/errors.js'
import {
  bearerCheck, deadline, errorReply, match, MAX_BODY_BYTES, notFound, parseBody, pathSegments, queryOf, queue, readBody, send, text,
  type Ctx, type Reply, type Route,
} from './http.js'
import { proxyRoutes } from './routes/proxies.js'
import { controlRoutes } from './routes/control.js'
import { eventRoutes } from './routes/events.js'
import { metaRoutes } from './routes/meta.js'
import { uiGuard, uiRoutes } from './routes/ui.js'

export { MAX_BODY_BYTES }

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

export function createApi(registry: Registry, opts: ApiOptions): http.RequestListener & { endStreams(): void } {
  const log = (opts.log ?? registry.log).child({ component: 'api' })
  const events = opts.journal ? eventRoutes(opts.journal) : undefined
  /** The dashboard's per-process token against cross-site requests (src/api/routes/ui.ts). */
  const csrf = randomBytes(32).toString('base64url')
  const routes: Route[] = [
    ...proxyRoutes(registry, log),
    ...controlRoutes(registry),
    ...metaRoutes(opts.version, opts.metrics, registry.catalog.behaviors),
    ...(events?.routes ?? []),
    ...uiRoutes(csrf, opts.version),
  ]
  const dispatch = dispatcher(registry, routes, log, opts, csrf)
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
  return Object.assign(listener, { endStreams: () => events?.endStreams() })
}

/**
 * From a request to its reply: the route and method, the browser guard, the token, the body (size, JSON),
 * then the handler — in the mutation queue or under the deadline — with CoquinErrors as their replies.
 * null: the client went away mid-body, nobody to answer.
 */
function dispatcher(registry: Registry, routes: Route[], log: Logger, opts: ApiOptions, csrf: string): (req: http.IncomingMessage) => Promise<Reply | null> {
  const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS
  const serial = queue(log)
  const authorized = opts.token === undefined ? () => true : bearerCheck(opts.token)
  return async (req: http.IncomingMessage): Promise<Reply | null> => {
    let segments = pathSegments(req.url ?? '/')
    // The dashboard reaches every API route under /ui/api/, behind its own guard instead of the browser rule.
    const viaUi = segments !== null && segments[0] === 'ui' && segments[1] === 'api'
    if (viaUi) segments = segments!.slice(2)
    const found = segments && match(routes, segments)
    if (!found || (viaUi && found.route.browser)) return notFound()
    const { route, params } = found
    const method = Object.hasOwn(route.methods, req.method ?? '') ? route.methods[req.method!] : undefined
    if (!method) {
      return { ...errorReply(new MethodNotAllowedError()), headers: { Allow: Object.keys(route.methods).join(', ') } }
    }
    // Toxiproxy's CSRF guard: browsers (all Mozilla/...) may not drive the API. The body is parsed as
    // JSON whatever its Content-Type, so a page's form POST would otherwise be a valid request.
    if (viaUi || route.browser) {
      const refused = uiGuard(req, csrf, viaUi)
      if (refused) return refused
    } else if ((req.headers['user-agent'] ?? '').startsWith('Mozilla/')) return text(403, 'User agent not allowed')
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

