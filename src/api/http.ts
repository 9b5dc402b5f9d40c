// The control API's HTTP plumbing: replies, routes and their matching, bodies (size, depth, JSON), the
// bearer check, deadlines and the mutation queue. Route modules (src/api/routes/) build on it; api.ts
// puts them together.
import type http from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Logger } from '../core/log.js'
import { ApiTimeoutError, BodyTooLargeError, type CoquinError, InvalidRequestError } from '../core/errors.js'

/** Request bodies above this get a 413 (Toxiproxy has no limit; no legitimate body comes near it). */
export const MAX_BODY_BYTES = 1 << 20
/** JSON nesting above this is refused before parsing: deep values would overflow the stack later. */
const MAX_DEPTH = 256

export interface Reply {
  status: number
  body?: string | Buffer
  type?: string
  headers?: Record<string, string>
  /** Takes over the response (a long-lived stream) instead of sending a body. */
  stream?: (res: http.ServerResponse) => void
}

export interface Ctx {
  params: string[]
  /** The URL's query parameters. */
  query: URLSearchParams
  /** The request body as JSON: `{}` when empty; 400 when malformed. Parsed on demand, so 404s come first. */
  body(): unknown
}

export interface Method {
  run(ctx: Ctx): Reply | Promise<Reply>
  /** Runs in the mutation queue. */
  mutates?: boolean
}

export interface Route {
  path: string[]          // segments; '*' captures one
  methods: Record<string, Method>
  /** Reachable without the token. */
  open?: boolean
  /** The dashboard's pages: served to browsers (behind the dashboard's guard, not the API's browser rule). */
  browser?: boolean
}

export const JSON_TYPE = 'application/json'
export const TEXT_TYPE = 'text/plain; charset=utf-8'

export const json = (status: number, value: unknown): Reply => ({ status, body: JSON.stringify(value), type: JSON_TYPE })
export const empty = (status: number): Reply => ({ status })
/** Go's http.Error: text/plain, nosniff, a trailing newline. */
export const text = (status: number, message: string): Reply =>
  ({ status, body: `${message}\n`, type: TEXT_TYPE, headers: { 'X-Content-Type-Options': 'nosniff' } })
export const notFound = (): Reply => text(404, '404 page not found')

/** Toxiproxy's error body, `{"error":...,"status":...}` + newline; `code` is coquin's stable error code. */
export function errorReply(err: CoquinError, extra: Record<string, unknown> = {}): Reply {
  const body = { error: err.message, status: err.statusCode, code: err.code, ...(err.detail !== undefined ? { detail: err.detail } : {}), ...extra }
  return { status: err.statusCode, body: `${JSON.stringify(body)}\n`, type: JSON_TYPE }
}

// Routing ----------------------------------------------------------------------------------------

/** The query string's parameters (malformed escapes are kept as they are). */
export function queryOf(url: string): URLSearchParams {
  const q = url.indexOf('?')
  if (q < 0) return new URLSearchParams()
  const h = url.indexOf('#', q)
  return new URLSearchParams(url.slice(q + 1, h < 0 ? undefined : h))
}

/** The path's segments, percent-decoded; null when it does not start with '/' or does not decode. */
export function pathSegments(url: string): string[] | null {
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

export function match(routes: Route[], segments: string[]): { route: Route; params: string[] } | null {
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
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
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
export function parseBody(raw: Buffer | null): unknown {
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

export function objectBody(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidRequestError(`${what} must be an object`)
  return value as Record<string, unknown>
}

// Plumbing ---------------------------------------------------------------------------------------

export function send(res: http.ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return
  res.statusCode = reply.status
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v)
  if (reply.body === undefined) { res.end(); return }
  res.setHeader('Content-Type', reply.type ?? JSON_TYPE)
  res.setHeader('Content-Length', Buffer.byteLength(reply.body))
  res.end(reply.body)
}

/** Compares the bearer token in constant time (both sides hashed, so lengths don't leak either). */
export function bearerCheck(token: string): (header: string | undefined) => boolean {
  const want = createHash('sha256').update(token).digest()
  return header => {
    const m = /^Bearer[ \t]+(.*)$/i.exec(header ?? '')
    const got = createHash('sha256').update(m?.[1]?.trim() ?? '').digest()
    return timingSafeEqual(want, got) && m !== null
  }
}

/** Settles with `p`, or rejects with a 503 after `ms` (the work goes on, its result is dropped). */
export function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
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
export function queue(log: Logger) {
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
