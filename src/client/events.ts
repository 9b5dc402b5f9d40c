// The journal as `coquin/client` sees it: the wire types of `GET /events` and `GET /proxies/{name}/links`,
// and pure helpers for the assertions resilience tests make ("how many attempts, on how many
// connections, after what backoff?"). No server code is imported: the client runs anywhere.
// (Re-exported by client.ts; the server's side is src/observe/journal.ts, whose wire shapes these mirror.)

export type JournalEventType = 'link_open' | 'link_close' | 'fault' | 'fault_acted' | 'http_request' | 'http_fallback' |
  'redis_command' | 'pg_query' | 'protocol_fallback'

interface EventBase {
  /** Monotonic from 1: `since: id` resumes after it. */
  id: number
  /** Epoch milliseconds, fractional (monotonic within the server process). */
  time: number
  proxy: string
  /** The link's id, as in `links()`. */
  link: number
}

export interface LinkOpenEvent extends EventBase {
  type: 'link_open'
  /** The client's address, `host:port`. */
  client: string
}

export interface LinkCloseEvent extends EventBase {
  type: 'link_close'
  /** client_close, upstream_close, reset, upstream_unreachable, error, … or the fault type that ended it (`reset_peer`). */
  reason: string
  bytes_upstream: number
  bytes_downstream: number
  duration_ms: number
  /** The socket error's code, when it ended on one. */
  error?: string
}

export interface FaultEvent extends EventBase {
  type: 'fault'
  toxic: string
  toxic_type: string
  stream: string
  /** HTTP faults: the request on the link it hit (1 = first). */
  request?: number
}

/**
 * A fault did something, at `time` (a `fault` event says only that it applies to a link or request): at most one
 * per link, fault, stream and action.
 */
export interface FaultActedEvent extends EventBase {
  type: 'fault_acted'
  /** The fault's name (partitions: `partition:<name>`). */
  fault: string
  toxic_type: string
  /** delayed, throttled, sliced, held, dropped, corrupted, reset, closed, silenced, refused, hung, answered, aborted, modified. */
  action: string
  /** The direction it acted on; absent for what acts on the whole link (a refused or hung connect, an HTTP request). */
  stream?: 'upstream' | 'downstream'
  /** HTTP faults: the request on the link (1 = first). */
  request?: number
}

export interface HttpRequestEvent extends EventBase {
  type: 'http_request'
  method: string
  path: string
  /** 0 if the response was cut before its head. */
  status: number
  source: 'upstream' | 'coquin'
  /** Request head seen → response sent, ms; the request started at `time - latency_ms`. */
  latency_ms: number
  /** How many requests its link had carried, this one included (1 = a fresh connection). */
  request: number
  faults?: string[]
  /** The request's Host field (a virtual-host-style S3 request names its bucket there). */
  host?: string
}

/** HTTP mode: a link's requests or responses could not be framed, so HTTP faults no longer see them. */
export interface HttpFallbackEvent extends EventBase {
  type: 'http_fallback'
  /** `upstream`: a request could not be framed; `downstream`: a response. */
  stream: 'upstream' | 'downstream'
  /** not_http, unsupported_version, bad_length, bad_chunk, too_large or other (as the metric's label). */
  reason: string
  /** The framer's words, e.g. `bad content-length`. */
  detail: string
  /** The proxy's http_fallback: `pass` (the rest went through unmatched) or `close` (the link was closed). */
  action: 'pass' | 'close'
}

/** Redis mode: one command and its reply (or coquin's answer). */
export interface RedisCommandEvent extends EventBase {
  type: 'redis_command'
  /** Upper-cased: `GET`, `SET`. */
  command: string
  /** Its first key, if it has one (at most 1 KiB of it). */
  key?: string
  /** The database the link had SELECTed. */
  db: number
  /** `ok`, an error reply's first word (`READONLY`, `LOADING`), or `aborted` (redis_abort). */
  outcome: string
  source: 'upstream' | 'coquin'
  /** Command decided → reply handed on, ms. */
  latency_ms: number
  /** The command's place on its link (1 = the first). */
  request: number
  faults?: string[]
}

/** PostgreSQL mode: one query and its outcome. */
export interface PgQueryEvent extends EventBase {
  type: 'pg_query'
  /** The first keyword: `SELECT`, `UPDATE`, `BEGIN` ('' if none). */
  statement: string
  /** The SQL text, at most 200 characters. */
  query: string
  database: string
  user: string
  /** `ok`, the SQLSTATE of its ErrorResponse (`40001`), or `aborted` (pg_abort). */
  outcome: string
  source: 'upstream' | 'coquin'
  /** Query decided → its result's end, ms. */
  latency_ms: number
  /** The query's place on its link (1 = the first). */
  request: number
  faults?: string[]
}

/** Redis and PostgreSQL modes: a stream could not be framed, and the link goes on as TCP (its protocol faults no longer see it). */
export interface ProtocolFallbackEvent extends EventBase {
  type: 'protocol_fallback'
  protocol: string
  stream: 'upstream' | 'downstream'
  /** The framer's words, e.g. `an unknown type byte 0x00`. */
  detail: string
}

export type JournalEvent = LinkOpenEvent | LinkCloseEvent | FaultEvent | FaultActedEvent | HttpRequestEvent | HttpFallbackEvent |
  RedisCommandEvent | PgQueryEvent | ProtocolFallbackEvent

/** In a follow stream: events the reader was too slow for were dropped. */
export interface DroppedNotice {
  type: 'dropped'
  dropped: number
  /** Last event id delivered before the gap: `events({ since: after })` gets what the journal still holds. */
  after: number
}

export interface EventFilter {
  proxy?: string | readonly string[]
  type?: JournalEventType | readonly JournalEventType[]
  /** Only events after this id. */
  since?: number
  /** At most this many: the first ones after `since` when given, else the most recent. */
  limit?: number
}

/** An open link, from `GET /proxies/{name}/links`. */
export interface LinkInfo {
  id: number
  client: string
  /** Epoch ms. */
  opened_at: number
  /** Since the last byte either way, ms. */
  idle_ms: number
  bytes_upstream: number
  bytes_downstream: number
  /** Names of the faults applied on it. */
  toxics: string[]
  state?: string
}

/** The query string for a filter (`?proxy=a,b&type=link_open&since=3`), or '' for none. */
export function eventsQuery(filter: EventFilter = {}, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams()
  const list = (v: string | readonly string[]) => (typeof v === 'string' ? v : v.join(','))
  if (filter.proxy !== undefined) p.set('proxy', list(filter.proxy))
  if (filter.type !== undefined) p.set('type', list(filter.type))
  if (filter.since !== undefined) p.set('since', String(filter.since))
  if (filter.limit !== undefined) p.set('limit', String(filter.limit))
  for (const [k, v] of Object.entries(extra)) p.set(k, v)
  const s = p.toString()
  return s === '' ? '' : `?${s}`
}

/** Parses an NDJSON byte stream into its items, one per line. */
export async function* ndjson<T>(body: AsyncIterable<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true })
    let nl: number
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (line !== '') yield JSON.parse(line) as T
    }
  }
  const rest = (buffered + decoder.decode()).trim()
  if (rest !== '') yield JSON.parse(rest) as T
}

// Assertion helpers ----------------------------------------------------------------------------------

const byId = <E extends JournalEvent>(a: E, b: E) => a.id - b.id

/** The HTTP requests for a path (exact, or a RegExp), in order. */
export function requestsFor(events: readonly JournalEvent[], path: string | RegExp): HttpRequestEvent[] {
  const hit = typeof path === 'string' ? (p: string) => p === path : (p: string) => path.test(p)
  return events.filter((e): e is HttpRequestEvent => e.type === 'http_request' && hit(e.path)).sort(byId)
}

/**
 * The attempts a client made, in order: its HTTP requests if there are any among the events (HTTP
 * mode), else the links it opened (TCP: each connection is an attempt).
 */
export function attempts(events: readonly JournalEvent[]): (HttpRequestEvent | LinkOpenEvent)[] {
  const http = events.filter((e): e is HttpRequestEvent => e.type === 'http_request')
  if (http.length > 0) return http.sort(byId)
  return events.filter((e): e is LinkOpenEvent => e.type === 'link_open').sort(byId)
}

/**
 * How many distinct links (connections) carried the attempts: equal to attempts(events).length when
 * every retry used a fresh connection, 1 when all went over one kept-alive connection.
 */
export function linksUsed(events: readonly JournalEvent[]): number {
  return new Set(attempts(events).map(e => e.link)).size
}

/**
 * Milliseconds between successive attempts, from the end of one to the start of the next: the
 * client's backoff (plus its own reaction time). HTTP: from a response sent (`time`) to the next
 * request's start (`time - latency_ms`). TCP: from a link's `link_close` (when the events hold it;
 * else its open) to the next `link_open`. n attempts give n - 1 gaps.
 */
export function retryGaps(events: readonly JournalEvent[]): number[] {
  const list = attempts(events)
  const closedAt = new Map<number, number>()
  for (const e of events) if (e.type === 'link_close') closedAt.set(e.link, e.time)
  const start = (e: HttpRequestEvent | LinkOpenEvent) => (e.type === 'http_request' ? e.time - e.latency_ms : e.time)
  // A link still open when the next attempt started gives a negative gap: the client did not wait.
  const end = (e: HttpRequestEvent | LinkOpenEvent) => (e.type === 'http_request' ? e.time : closedAt.get(e.link) ?? e.time)
  const gaps: number[] = []
  for (let i = 1; i < list.length; i++) gaps.push(round3(start(list[i]!) - end(list[i - 1]!)))
  return gaps
}

const round3 = (n: number) => Math.round(n * 1000) / 1000
