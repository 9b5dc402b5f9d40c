// All that a behavior may import. A behavior is one file in behaviors/: a name, an attribute schema
// (TypeBox, the single source for validation, defaults, the config JSON Schema and the docs) and
// either a stage factory (a fault on the data path) or a connect decision (a fault at accept time).
import { Type, type TObject, type Static } from '@sinclair/typebox'
import { MAX_TIMER_MS, type Clock, type Timer } from '../core/clock.js'
export { MAX_TIMER_MS }
import type { Logger } from '../core/log.js'
import type { Random } from '../core/random.js'
import type { Protocol } from '../protocols/index.js'

export { Type }
export type { Static, TObject, Clock, Timer, Logger, Random }

/** A direction of a link: `upstream` is client → server, `downstream` is server → client. */
export type Stream = 'upstream' | 'downstream'

/** Where a stage hands chunks on: the next stage, or the destination socket. */
export interface Sink {
  write(chunk: Buffer): void
  /** The source's FIN, passed on once everything before it has been written. */
  end(): void
}

/** What a stage may see and do of its link. Call its functions as methods (`link.reset()`), not detached. */
export interface LinkView {
  readonly id: number
  readonly stream: Stream
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  /** Clock time of the last byte read from either side. */
  lastActivity(): number
  /** RST both sides now. */
  reset(): void
  /** FIN both sides after what was written is flushed; what either side sends next is discarded. */
  close(): void
  /** Forward nothing more either way and tell neither side (a load balancer that forgot the flow). */
  silence(): void
  /**
   * Forward nothing more and tell neither side, like silence(); then the next bytes or FIN from either side
   * reset both (a NAT or load balancer that forgot the flow answers its next packet with a reset).
   */
  forget(): void
  /** Count bytes the fault threw away or altered (the first call on a link also records that the fault acted). */
  dropped(bytes: number): void
  corrupted(bytes: number): void
  /**
   * Record that the fault did something to the link now (the journal's `fault_acted`), for what reset(), close(),
   * silence(), forget(), dropped() and corrupted() do not say already: `delayed`, `throttled`, `sliced`, `held`.
   * Only the first call per action and link counts, so calling it for every chunk is allowed but wasteful.
   */
  acted(action: StageAction): void
}

/**
 * What a fault did (`fault_acted` in the journal, the `action` label of coquin_fault_actions_total): a fixed set.
 * `silenced` includes a link forgotten (idle_reset / http_close rst_on_reuse), whose reuse then shows as `reset`.
 */
export const FAULT_ACTIONS = [
  'delayed', 'throttled', 'sliced', 'held', 'dropped', 'corrupted', 'reset', 'closed', 'silenced',
  'refused', 'hung', 'answered', 'aborted', 'modified',
] as const
export type FaultAction = (typeof FAULT_ACTIONS)[number]
/** What a data-path stage may report having done. */
export type StageAction = Exclude<FaultAction, 'refused' | 'hung' | 'answered' | 'aborted' | 'modified'>

export interface Stage {
  /** Take a chunk; pass chunks on with next.write(), in order. */
  write(chunk: Buffer): void
  /** The source sent FIN: pass it on with next.end() once nothing is held before it. */
  end(): void
  /** Bytes held: the core pauses the source while held + the destination's buffer is over the mark. */
  readonly held: number
  /**
   * Hand on what is held now: the fault was removed, or updated (a new stage takes this one's place).
   * A stage that holds bytes must implement it. A fault whose removal means more (Toxiproxy's `timeout`
   * closes its links) acts on `'remove'` only.
   */
  flush?(why: 'remove' | 'update'): void
  /** Cancel timers and let go of held bytes; called on every path, once. */
  destroy(): void
}

/** What a connection-level fault does to a new client connection. */
export type ConnectAction =
  | { action: 'pass' }
  /** Refuse the connect: for every client at toxicity 1, by closing the listener (ECONNREFUSED); else accept and reset. */
  | { action: 'refuse' }
  /** Accept, then reset at once (ECONNRESET), before any upstream connection. */
  | { action: 'reset' }
  | { action: 'hang' }
  | { action: 'delay'; ms: number }

export interface Behavior<S extends TObject = TObject> {
  /** The API's toxic type, and the file's name in behaviors/. */
  readonly type: string
  /** One line for the CLI listing and the README. */
  readonly summary: string
  /** Longer notes for the README: semantics, what removal does. */
  readonly notes?: string
  readonly attributes: S
  /** The proxy protocols it works on (default: all); src/protocols/index.ts checks it. */
  readonly protocols?: readonly Protocol[]
  /** A fault on the data path: one stage per link × stream. */
  stage?(attributes: Readonly<Static<S>>, link: LinkView, next: Sink): Stage
  /** A fault at accept time, before the upstream connection is made. */
  connect?(attributes: Readonly<Static<S>>, random: Random): ConnectAction
  /** HTTP mode: what to do with one matching request (null: nothing). The core matches and draws toxicity. */
  request?(attributes: Readonly<Static<S>>, req: HttpRequest, fault: HttpFault, ctx: HttpContext): HttpAction | null
  /** Redis mode: what to do with one matching command (null: nothing). The core matches and draws toxicity. */
  command?(attributes: Readonly<Static<S>>, cmd: RedisCommand, ctx: HttpContext): RedisAction | null
  /** PostgreSQL mode: what to do with one matching query (null: nothing). The core matches and draws toxicity. */
  query?(attributes: Readonly<Static<S>>, q: PgQuery, ctx: HttpContext): PgAction | null
  /** Per-fault state (token buckets…), made once when the fault is created: `fault.state`. */
  init?(attributes: Readonly<Static<S>>): unknown
  /** Checks beyond the schema (regexes, CIDRs): a message for InvalidAttributesError, or undefined. */
  validate?(attributes: Readonly<Static<S>>): string | undefined
}

export function defineBehavior<S extends TObject>(b: Behavior<S>): Behavior {
  return b as unknown as Behavior
}

/** Milliseconds, a non-negative integer. */
export const ms = (description: string, dflt = 0) =>
  Type.Integer({ minimum: 0, maximum: MAX_TIMER_MS, default: dflt, description: `${description} (ms)` })

/**
 * The largest count, size or rate an attribute takes: above 2^53 - 1 a double no longer holds every
 * integer (2^53 + 1 arrives as 2^53), and nothing coquin counts gets near it.
 */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER

/** `delay` ± `jitter` ms, rounded, never below 0 nor above the longest timer: uniform (half-width) or normal (sd). */
export function jittered(delay: number, jitter: number, distribution: 'uniform' | 'normal', random: Random): number {
  if (jitter <= 0) return delay
  const spread = distribution === 'normal'
    ? Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
    : random() * 2 - 1
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.round(delay + spread * jitter)))
}

/** A stage that forwards everything untouched: for faults whose effect is elsewhere. */
export function passStage(next: Sink): Stage {
  return { held: 0, write: c => next.write(c), end: () => next.end(), destroy() {} }
}

// HTTP mode ---------------------------------------------------------------------------------------

/** One HTTP request as the HTTP behaviors see it (its head: the body is never buffered). */
export interface HttpRequest {
  readonly method: string
  /** The request-target exactly as sent: `/a/b?x=1`, `http://host/a`, `host:443`, `*`. */
  readonly target: string
  /** The target's path, without the query; `''` for CONNECT. */
  readonly path: string
  /** The decoded query parameters (the first value of a repeated name). */
  readonly query: Readonly<Record<string, string>>
  /** `1.1` or `1.0`. */
  readonly version: string
  /** Lower-cased names; repeated fields joined with `, `. */
  readonly headers: Readonly<Record<string, string>>
  /** Names as sent and values, flat: [name, value, name, value, …] (as node's `rawHeaders`). */
  readonly rawHeaders: readonly string[]
  readonly client: { readonly address: string; readonly port: number }
  /** The link's id. */
  readonly link: number
  /** 0-based index of this request on its link. */
  readonly index: number
}

/** What an HTTP behavior may see of its fault: `state` is what `init` made. */
export interface HttpFault {
  readonly name: string
  readonly type: string
  state: unknown
}

/** The proxy's clock and seeded random, for time- and chance-based HTTP behaviors. */
export interface HttpContext {
  readonly clock: Clock
  readonly random: Random
}

export interface HeaderEdit {
  /** Add or replace (every field of that name goes; one `name: value` is added). */
  readonly set?: Readonly<Record<string, string>>
  /** Remove every field with one of these names (case-insensitive). */
  readonly remove?: readonly string[]
}

/** What an HTTP behavior does to one request. */
export type HttpAction =
  /** Answer without forwarding; the request and its body are swallowed, the response is sent in pipeline order. */
  | { readonly action: 'respond'; readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string }
  /** Hold the request before forwarding it, or the response's head, or the response's body. */
  | { readonly action: 'delay'; readonly phase: 'request' | 'response_head' | 'response_body'; readonly ms: number }
  /** Forward the request, then break the connection before the response, after its head, or after `bytes` of its body. */
  | { readonly action: 'abort'; readonly phase: 'before_response' | 'after_head' | 'after_bytes'; readonly bytes: number; readonly mode: 'rst' | 'fin' }
  /** Close the connection right after the response; `announce` adds `Connection: close` to that response first. */
  /** `rst_on_reuse`: the connection looks alive after the response; the client's next bytes on it get a reset. */
  | { readonly action: 'close_after_response'; readonly mode: 'fin' | 'rst' | 'rst_on_reuse'; readonly announce?: boolean }
  | { readonly action: 'rewrite_headers'; readonly request?: HeaderEdit; readonly response?: HeaderEdit }

/** `/regex/` or `/regex/i`, else an exact string. */
const valuePattern = (what: string) => Type.String({ description: `${what}: an exact value, or /regex/ (/regex/i ignores case)` })

/** `attributes.match` of every HTTP fault: all the conditions given must hold. */
export const httpMatch = Type.Object({
  method: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))],
    { description: 'a method or a list of methods (case-insensitive)' })),
  path: Type.Optional(Type.String({ description: 'glob on the path (no query): `*` within one segment, `**` across segments, `?` one character' })),
  path_prefix: Type.Optional(Type.String({ description: 'the path starts with this' })),
  path_regex: Type.Optional(Type.String({ description: 'a JavaScript regular expression tested on the path' })),
  headers: Type.Optional(Type.Record(Type.String(), valuePattern('header name → value'),
    { description: 'header name (any case) → exact value, or /regex/; a missing header never matches' })),
  query: Type.Optional(Type.Record(Type.String(), valuePattern('query name → value'),
    { description: 'query parameter → exact (decoded) value, or /regex/' })),
  client: Type.Optional(Type.Array(Type.String(), { description: 'client addresses or CIDRs, IPv4 or IPv6 (10.0.0.0/8, ::1/128)' })),
}, { additionalProperties: false, default: {}, description: 'which requests the fault applies to (all given conditions must hold)' })

export type HttpMatch = Static<typeof httpMatch>

export { checkMatch } from '../protocols/http/match.js'

// Redis and PostgreSQL modes ----------------------------------------------------------------------

/** One Redis command as the Redis behaviors see it (its name and first arguments; values are never buffered). */
export interface RedisCommand {
  /** Upper-cased: `GET`, `SET`, `BLPOP`. */
  readonly name: string
  /** The arguments read before deciding, the name first (at most the first key's; each capped at 1 KiB). */
  readonly args: readonly string[]
  /** The command's first key, if it has one. */
  readonly key?: string
  /** The database the link has SELECTed (0 at first). */
  readonly db: number
  readonly client: { readonly address: string; readonly port: number }
  readonly link: number
  /** 0-based index of this command on its link. */
  readonly index: number
}

/** What a Redis behavior does to one command. */
export type RedisAction =
  /** Answer with this error reply (`-<message>`) without forwarding the command; later replies stay paired. */
  | { readonly action: 'error'; readonly message: string }
  /** Hold the command before forwarding it, or its reply before handing it to the client. */
  | { readonly action: 'delay'; readonly phase: 'command' | 'reply'; readonly ms: number }
  /** Before forwarding the command: reset or close the link, or forward nothing more and answer nothing. */
  | { readonly action: 'abort'; readonly mode: 'rst' | 'fin' | 'hang' }

/** `attributes.match` of every Redis fault: all the conditions given must hold. */
export const redisMatch = Type.Object({
  command: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))],
    { description: 'a command name or a list of names (case-insensitive)' })),
  key: Type.Optional(Type.String({ description: 'a Redis-style glob on the command\'s first key (`*`, `?`, `[abc]`); a command without a key never matches' })),
  db: Type.Optional(Type.Integer({ minimum: 0, description: 'the database the link has SELECTed' })),
  client: Type.Optional(Type.Array(Type.String(), { description: 'client addresses or CIDRs, IPv4 or IPv6' })),
}, { additionalProperties: false, default: {}, description: 'which commands the fault applies to (all given conditions must hold)' })

export type RedisMatch = Static<typeof redisMatch>

/** One PostgreSQL query as the PostgreSQL behaviors see it. */
export interface PgQuery {
  /** The SQL text: a simple query's, or for the extended protocol the prepared statement's being executed. */
  readonly sql: string
  /** Its first keyword, upper-cased: `SELECT`, `UPDATE`, `BEGIN`… (`''` if none). */
  readonly statement: string
  /** From the startup message. */
  readonly database: string
  readonly user: string
  readonly client: { readonly address: string; readonly port: number }
  readonly link: number
  /** 0-based index of this query on its link. */
  readonly index: number
}

/** What a PostgreSQL behavior does to one query. */
export type PgAction =
  /** Answer with an ErrorResponse (then ReadyForQuery; FATAL: then close) without forwarding the query. */
  | { readonly action: 'error'; readonly code: string; readonly message: string; readonly severity: 'ERROR' | 'FATAL' }
  | { readonly action: 'delay'; readonly ms: number }
  | { readonly action: 'abort'; readonly mode: 'rst' | 'fin' | 'hang' }

/** `attributes.match` of every PostgreSQL fault: all the conditions given must hold. */
export const pgMatch = Type.Object({
  query: Type.Optional(Type.String({ description: 'a JavaScript regular expression searched in the SQL text; `/…/i` ignores case' })),
  statement: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))],
    { description: 'the first keyword, or a list (case-insensitive): SELECT, INSERT, UPDATE, DELETE, BEGIN, COMMIT…' })),
  database: Type.Optional(Type.String({ description: 'the database named at startup' })),
  user: Type.Optional(Type.String({ description: 'the user named at startup' })),
  client: Type.Optional(Type.Array(Type.String(), { description: 'client addresses or CIDRs, IPv4 or IPv6' })),
}, { additionalProperties: false, default: {}, description: 'which queries the fault applies to (all given conditions must hold)' })

export type PgMatch = Static<typeof pgMatch>

export { checkRedisMatch } from '../protocols/redis/match.js'
export { checkPgMatch } from '../protocols/postgres/match.js'

export interface Pace {
  /** Bytes in the next piece (≥ 1). */
  size(): number
  /** Meter time, in ms, that a piece of this many bytes costs before the next may leave. */
  cost(bytes: number): number
  /** How far the meter may fall behind the clock (a late timer) and still catch up, in ms. */
  catchUpMs: number
  /** Hold everything until removal (a stall). */
  stalled?: boolean
  /** What the first chunk through records (LinkView.acted): `throttled`, `sliced`; `held` when stalled. */
  action: StageAction
}

/**
 * A stage that releases what it holds in pieces on a meter — the shape of `bandwidth` and `slicer`.
 * Order is kept, the FIN follows the last held byte, an idle stream saves up at most 10 ms of credit, and removal
 * hands everything on at once.
 */
/** Credit a paced stage keeps across a moment with nothing to send, in ms (see write()). */
const IDLE_CREDIT_MS = 10

export function pacedStage(link: LinkView, next: Sink, pace: Pace): Stage {
  const queue: Buffer[] = []
  let held = 0
  let ended = false     // a FIN is held behind the queue
  let dead = false
  let acted = false
  let free = 0          // clock time at which the meter lets the next piece go
  let timer: Timer | undefined

  const finish = () => {
    if (ended && held === 0 && !dead) { ended = false; next.end() }
  }
  const pump = () => {
    timer = undefined
    const now = link.clock.now()
    free = Math.max(free, now - pace.catchUpMs)
    while (held > 0 && free <= now + 0.5 && !dead) {
      const first = queue[0]!
      const n = pace.size()
      let piece = first
      if (first.length > n) {
        piece = first.subarray(0, n)
        queue[0] = first.subarray(n)
      } else {
        queue.shift()
      }
      held -= piece.length
      free += pace.cost(piece.length)
      next.write(piece)
    }
    if (dead) return
    if (held > 0) timer = link.clock.setTimeout(pump, free - now)
    else finish()
  }
  return {
    get held() { return held },
    write(chunk) {
      if (chunk.length === 0) return
      if (!acted) { acted = true; link.acted(pace.stalled ? 'held' : pace.action) }
      // Idle: at most IDLE_CREDIT_MS of credit is kept. Keeping none lost rate whenever the source paused
      // for backpressure and the stage briefly ran dry (-3% at 100 MB/s, measured with bench/).
      if (held === 0) free = Math.max(free, link.clock.now() - Math.min(pace.catchUpMs, IDLE_CREDIT_MS))
      queue.push(chunk)
      held += chunk.length
      if (!pace.stalled && timer === undefined) pump()
    },
    end() {
      ended = true
      finish()
    },
    flush() {
      timer?.cancel(); timer = undefined
      const all = queue.splice(0)
      held = 0
      for (const chunk of all) if (!dead) next.write(chunk)
      finish()
    },
    destroy() {
      dead = true
      timer?.cancel(); timer = undefined
      queue.length = 0
      held = 0
    },
  }
}
