// What the core tells the outside about links and faults: metrics and the journal listen here.
// The data path calls only per-link or per-fault methods, never per chunk.
import type { Fault } from '../faults/fault.js'
import type { FaultAction } from '../faults/behavior.js'
export type { FaultAction } from '../faults/behavior.js'

/**
 * What an observer may read of a link: a read-only view (src/datapath/link.ts's Link implements it), never the
 * link's sockets, stages or owner. Everything here is a field or a cheap getter, read only when an observer asks.
 */
export interface ObservedLink {
  readonly id: number
  /** Epoch ms. */
  readonly openedAt: number
  /** Bytes read from the client / from the upstream. */
  readonly bytesUpstream: number
  readonly bytesDownstream: number
  /** Bytes written to the upstream / to the client (less than read while a fault holds or drops bytes). */
  readonly bytesSentUpstream: number
  readonly bytesSentDownstream: number
  /** The client's address (read on first use by whoever needs it: reading it costs every socket speed). */
  readonly client: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined }
  /** The proxy's listen address and upstream when the link opened: Toxiproxy's metric labels. */
  readonly listener: string
  readonly upstreamAddress: string
  /** The names of the faults applied on it. */
  readonly faultNames: readonly string[]
}

export interface Observer {
  linkOpened(proxy: string, link: ObservedLink): void
  linkClosed(proxy: string, link: ObservedLink, reason: string, err?: Error): void
  upstreamConnected(proxy: string, seconds: number): void
  upstreamConnectError(proxy: string, code: string): void
  /** `request`: for an HTTP fault, the request's index on the link (0-based, as HttpRequestInfo.index). */
  faultApplied(proxy: string, fault: Fault, link: ObservedLink, request?: number): void
  bytesDropped(proxy: string, stream: string, bytes: number): void
  bytesCorrupted(proxy: string, stream: string, bytes: number): void
  /** A TLS handshake failed: a client's to a proxy terminating TLS, or coquin's to a TLS upstream. Optional. */
  tlsHandshakeFailed?(proxy: string, side: 'client' | 'upstream', code: string): void
  /** A client connection was reset at accept: the link budget (file descriptors) was spent. Optional. */
  connectionShed?(proxy: string): void
  /** HTTP mode: one call per request, once its response was sent or cut. Optional: observers that skip it need no change. */
  httpRequest?(proxy: string, link: ObservedLink, request: HttpRequestInfo): void
  /** HTTP mode: a stream of a link could not be framed; at most once per link. Optional. */
  httpFallback?(proxy: string, link: ObservedLink, fallback: HttpFallbackInfo): void
  /** Redis mode: one call per command, once its reply (or coquin's answer) was handed on. Optional. */
  redisCommand?(proxy: string, link: ObservedLink, command: RedisCommandInfo): void
  /** PostgreSQL mode: one call per query, once its ReadyForQuery (or coquin's answer) was handed on. Optional. */
  pgQuery?(proxy: string, link: ObservedLink, query: PgQueryInfo): void
  /** Redis and PostgreSQL modes: a stream of a link could not be framed and the link goes on as TCP; once per link. Optional. */
  protocolFallback?(proxy: string, link: ObservedLink, fallback: ProtocolFallbackInfo): void
  /**
   * A fault did something to a link or request, now (`faultApplied` says only that it applies): at most once per
   * link, fault, stream and action. `request`: HTTP, the request's index on the link; `stream`: the direction of the
   * stage that acted (absent for a connect decision or an HTTP request). Optional.
   */
  faultActed?(proxy: string, fault: Fault, link: ObservedLink, action: FaultAction, request?: number, stream?: 'upstream' | 'downstream'): void
}


/** One Redis command and its reply, as the journal records it (`redis_command`). */
export interface RedisCommandInfo {
  /** The command's place on its link: 0 for the first. */
  readonly index: number
  /** Upper-cased name. */
  readonly command: string
  readonly key?: string
  readonly db: number
  /** `ok`, an error reply's first word (`READONLY`, `LOADING`), or `aborted` (redis_abort). */
  readonly outcome: string
  /** `coquin`: answered (or aborted) by a fault without reaching the upstream. */
  readonly source: 'upstream' | 'coquin'
  /** From the command's decision to its reply handed on, in ms. */
  readonly latencyMs: number
  readonly faults?: readonly string[]
}

/** One PostgreSQL query and its outcome, as the journal records it (`pg_query`). */
export interface PgQueryInfo {
  readonly index: number
  /** The first keyword, upper-cased (`SELECT`, `UPDATE`); '' if none. */
  readonly statement: string
  /** The SQL text, at most 200 characters. */
  readonly query: string
  readonly database: string
  readonly user: string
  /** `ok`, the SQLSTATE of its ErrorResponse (`40001`), or `aborted` (pg_abort). */
  readonly outcome: string
  readonly source: 'upstream' | 'coquin'
  /** From the query's decision to its result's end (CommandComplete, ErrorResponse…), in ms. */
  readonly latencyMs: number
  readonly faults?: readonly string[]
}

/** A Redis or PostgreSQL link that framing gave up on (`protocol_fallback` in the journal): it goes on as TCP. */
export interface ProtocolFallbackInfo {
  readonly protocol: string
  /** `upstream`: the client's bytes could not be framed; `downstream`: the server's. */
  readonly stream: 'upstream' | 'downstream'
  /** What the framer said, e.g. `an unknown type byte 0x00`. */
  readonly detail: string
}

/** A link that HTTP framing gave up on (`http_fallback` in the journal). */
export interface HttpFallbackInfo {
  /** `upstream`: a request could not be framed; `downstream`: a response. */
  readonly stream: 'upstream' | 'downstream'
  /** A fixed set, for metric labels: not_http, unsupported_version, bad_length, bad_chunk, too_large, other. */
  readonly reason: string
  /** What the framer said, e.g. `bad content-length`. */
  readonly detail: string
  /** The proxy's http_fallback: `pass` (the rest of the link goes through unmatched) or `close` (the link was closed). */
  readonly action: 'pass' | 'close'
}

/** One HTTP request and its response, as the journal records it (`http_request`). */
export interface HttpRequestInfo {
  /** The request's place on its link: 0 for the first (src/http numbers exchanges this way). */
  readonly index: number
  readonly method: string
  /** The request-target's path, without the query. */
  readonly path: string
  /** The final status; 0 if the response was cut before its head. */
  readonly status: number
  /** `coquin`: answered by a fault without reaching the upstream. */
  readonly source: 'upstream' | 'coquin'
  /** From the request's head read to its response sent (or cut), in ms. */
  readonly latencyMs: number
  /** Names of the faults that acted on it. */
  readonly faults?: readonly string[]
  /** The request's Host field (virtual-host S3 requests name their bucket there); absent when it has none. */
  readonly host?: string
}

export const nullObserver: Observer = {
  linkOpened() {}, linkClosed() {}, upstreamConnected() {}, upstreamConnectError() {},
  faultApplied() {}, bytesDropped() {}, bytesCorrupted() {},
}

/**
 * Every method of Observer, once. The `satisfies` clause fails to compile when a method is added to the
 * interface and not here, so the fan-out below can never drop an event silently.
 */
const OBSERVER_METHODS = {
  linkOpened: 'required', linkClosed: 'required', upstreamConnected: 'required', upstreamConnectError: 'required',
  faultApplied: 'required', bytesDropped: 'required', bytesCorrupted: 'required',
  tlsHandshakeFailed: 'optional', connectionShed: 'optional', httpRequest: 'optional', httpFallback: 'optional', faultActed: 'optional',
  redisCommand: 'optional', pgQuery: 'optional', protocolFallback: 'optional',
} as const satisfies { [K in keyof Observer]-?: undefined extends Observer[K] ? 'optional' : 'required' }

/**
 * Fans one event out to several observers (metrics, journal, a test's spy). An optional method none of them has
 * stays absent, so a caller that checks for it (`observer.httpRequest?`) skips its work.
 */
export function observers(...list: Observer[]): Observer {
  type Fn = (a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown) => void
  const out: Record<string, Fn> = {}
  for (const k of Object.keys(OBSERVER_METHODS) as (keyof Observer)[]) {
    const has = list.filter(o => typeof o[k] === 'function')
    if (has.length === 0 && OBSERVER_METHODS[k] === 'optional') continue
    const fns = has.map(o => (o[k] as Fn).bind(o))
    // Fixed arity (the longest method takes six), no rest array: these run per link and per HTTP request.
    out[k] = fns.length === 1 ? fns[0]! : (a, b, c, d, e, f) => { for (const fn of fns) fn(a, b, c, d, e, f) }
  }
  return out as unknown as Observer
}
