// The journal: a bounded in-memory ring of what happened to links and requests, for resilience tests
// ("did my client retry, how often, after how long, on a fresh connection?") and for people watching.
// It is an Observer (wired with observers() beside metrics and logs): the data path pays one small
// object per link open/close, fault hit or HTTP request, never anything per chunk.
//
// Events, oldest first, each `{ id, time, type, proxy, link, ... }`:
//   id    monotonic from 1, never reused, so `since=<id>` pages and resumes
//   time  epoch milliseconds with sub-ms precision (performance.timeOrigin + performance.now():
//         monotonic within the process, so gaps between events are never negative)
//   link  the link's id (as in `GET /proxies/{name}/links` and the logs)
// Followers (`subscribe`) get new events as they come. One that cannot keep up is a cursor into the
// ring (no per-follower copy): it may lag at most its backlog bound, then its oldest waiting events
// are dropped and a `dropped` notice says how many.
import type { Fault } from '../faults/fault.js'
import type { FaultAction, HttpFallbackInfo, HttpRequestInfo, Observer, PgQueryInfo, ProtocolFallbackInfo, RedisCommandInfo } from './observer.js'
import type { Link } from '../datapath/link.js'   // openLinks (the API's listing) reads a link's clock and state
import { formatAddress } from '../datapath/proxy.js'
// The wire shapes are the client's (src/client/events.ts, free of server code): one definition for both sides.
import type { DroppedNotice, FaultActedEvent, FaultEvent, HttpFallbackEvent, HttpRequestEvent, JournalEvent, LinkCloseEvent, LinkInfo, LinkOpenEvent, PgQueryEvent, ProtocolFallbackEvent, RedisCommandEvent } from '../client/events.js'
export type { DroppedNotice, FaultActedEvent, FaultEvent, HttpFallbackEvent, HttpRequestEvent, JournalEvent, LinkCloseEvent, LinkInfo, LinkOpenEvent, PgQueryEvent, ProtocolFallbackEvent, RedisCommandEvent }

export const EVENT_TYPES = ['link_open', 'link_close', 'fault', 'fault_acted', 'http_request', 'http_fallback', 'redis_command', 'pg_query', 'protocol_fallback'] as const
export type JournalEventType = (typeof EVENT_TYPES)[number]

/** Distinct paths and hosts the journal shares between its events before it starts over. */
const MAX_INTERNED = 4096

/** Default number of events kept (`serve --journal-size`, StartOptions.journalSize). */
export const DEFAULT_JOURNAL_SIZE = 10_000

export interface EventFilter {
  /** One name or several. */
  proxy?: string | readonly string[]
  type?: JournalEventType | readonly JournalEventType[]
  /** Only events with a greater id. */
  since?: number
}

export interface EventQuery extends EventFilter {
  /** At most this many: the first ones after `since` when it is given (paging), else the most recent. */
  limit?: number
}

/** What the journal reads of a link: a structural subset of Link, so tests can feed it plain objects. */
export interface JournalLink {
  readonly id: number
  readonly openedAt: number
  readonly bytesUpstream: number
  readonly bytesDownstream: number
  readonly client: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined }
}

export interface JournalOptions {
  /** Events kept; the oldest go first. Default 10,000. */
  size?: number
  /**
   * How far (in events) a follower may lag before the oldest it has not taken are dropped; at most,
   * and by default, `size`. What it has not taken stays in the ring, so this bounds loss, not memory.
   */
  followBacklog?: number
  /** Epoch ms; default performance.timeOrigin + performance.now(). */
  now?: () => number
}

export interface SubscribeOptions {
  filter?: EventFilter
  /** Overrides the journal's followBacklog for this follower. */
  maxBacklog?: number
}

/**
 * Receives each event (or a drop notice). Returning `false` means "not ready": later events wait in
 * the backlog until `resume()` is called. A throw ends the subscription.
 */
export type Deliver = (item: JournalEvent | DroppedNotice) => boolean | void

export interface Subscription {
  /** Events it has yet to take or skip (never more than maxBacklog). */
  readonly backlog: number
  readonly maxBacklog: number
  /** Events dropped in all, so far. */
  readonly dropped: number
  readonly paused: boolean
  readonly closed: boolean
  /** The reader is ready again: hand on the notice and the backlog until it says stop. */
  resume(): void
  close(): void
}

const defaultNow = () => performance.timeOrigin + performance.now()
const round3 = (n: number) => Math.round(n * 1000) / 1000

function toSet<V extends string>(v: V | readonly V[] | undefined): Set<V> | null {
  if (v === undefined) return null
  return new Set(typeof v === 'string' ? [v as V] : v)
}

function matcher(f: EventFilter = {}): (e: JournalEvent) => boolean {
  const proxies = toSet(f.proxy)
  const types = toSet(f.type)
  const since = f.since ?? 0
  return e => e.id > since && (proxies === null || proxies.has(e.proxy)) && (types === null || types.has(e.type))
}

const errCode = (err: Error | undefined): string | undefined =>
  err ? (err as NodeJS.ErrnoException).code ?? err.name : undefined

/**
 * A follower is a cursor into the ring: what it has not taken yet stays in the ring (no copy), so
 * its memory is constant however slowly it reads. It may lag at most maxBacklog events (never more
 * than the ring holds); past that the oldest waiting ones are skipped and counted as dropped.
 */
class Follower implements Subscription {
  readonly #deliver: Deliver
  readonly #journal: Journal
  readonly match: (e: JournalEvent) => boolean
  readonly maxBacklog: number
  /** The id of the last event handed on or skipped. */
  cursor: number
  #lastSent: number
  #pendingDrops = 0
  #draining = false
  dropped = 0
  paused = false
  closed = false

  constructor(journal: Journal, deliver: Deliver, match: (e: JournalEvent) => boolean, maxBacklog: number, since: number) {
    this.#journal = journal
    this.#deliver = deliver
    this.match = match
    this.maxBacklog = Math.max(1, Math.min(maxBacklog, journal.capacity))
    // Events evicted before it came are not counted: a query has the same view.
    this.cursor = Math.max(since, journal.oldestId - 1, 0)
    this.#lastSent = this.cursor
    this.#trim(journal.lastId)
  }

  /** Events it has yet to take (or skip), at most maxBacklog. */
  get backlog(): number { return Math.max(0, this.#journal.lastId - this.cursor) }

  /** Drop the oldest waiting events until lagging `newest` by at most maxBacklog. */
  #trim(newest: number): void {
    while (newest - this.cursor > this.maxBacklog) {
      const old = this.#journal.at(++this.cursor)
      if (old && this.match(old)) { this.dropped++; this.#pendingDrops++ }
    }
  }

  /** Before an event with this id is stored (the one it may push out of the ring is still there). */
  beforeRecord(id: number): void { this.#trim(id) }

  afterRecord(e: JournalEvent): void {
    if (this.paused || this.#draining || this.closed) return
    if (this.cursor === e.id - 1 && this.#pendingDrops === 0) {   // caught up: the fast path
      this.cursor = e.id
      if (this.match(e)) this.#send(e)
      return
    }
    this.resume()
  }

  resume(): void {
    if (this.closed || this.#draining) return
    this.paused = false
    this.#draining = true
    try {
      while (!this.paused && !this.closed) {
        if (this.#pendingDrops > 0) {
          const notice: DroppedNotice = { type: 'dropped', dropped: this.#pendingDrops, after: this.#lastSent }
          this.#pendingDrops = 0
          this.#send(notice)
        } else if (this.cursor < this.#journal.lastId) {
          const e = this.#journal.at(++this.cursor)
          if (e && this.match(e)) this.#send(e)
        } else break
      }
    } finally {
      this.#draining = false
    }
  }

  #send(item: JournalEvent | DroppedNotice): void {
    if (item.type !== 'dropped') this.#lastSent = item.id
    let ok: boolean | void
    try {
      ok = this.#deliver(item)
    } catch {
      this.close()
      return
    }
    if (ok === false) this.paused = true
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.#journal.unsubscribe(this)
  }
}

export class Journal implements Observer {
  readonly capacity: number
  readonly followBacklog: number
  readonly #ring: (JournalEvent | undefined)[]
  /** Index of the oldest event in the ring. */
  #start = 0
  #size = 0
  #nextId = 1
  readonly #now: () => number
  readonly #followers = new Set<Follower>()
  /** When each open link was seen to open, for duration_ms (Link.openedAt is whole ms). */
  readonly #opened = new WeakMap<object, number>()

  constructor(opts: JournalOptions = {}) {
    const size = opts.size ?? DEFAULT_JOURNAL_SIZE
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`journal size must be a positive integer: ${size}`)
    this.capacity = size
    this.followBacklog = Math.min(opts.followBacklog ?? size, size)
    this.#ring = new Array(size)
    this.#now = opts.now ?? defaultNow
  }

  /** Events held now (at most capacity). */
  get size(): number { return this.#size }
  /** The id of the oldest event held (0 when empty): ids below it were evicted. */
  get oldestId(): number { return this.#size === 0 ? 0 : this.#ring[this.#start]!.id }
  /** The id of the newest event (0 before the first). */
  get lastId(): number { return this.#nextId - 1 }
  /** The live followers (for stats and tests). */
  get followers(): readonly Subscription[] { return [...this.#followers] }

  /** Stamps an event with id and time, keeps it (evicting the oldest when full) and hands it to followers. */
  record<E extends JournalEvent>(fields: Omit<E, 'id' | 'time'>): E {
    return this.#store({ id: 0, time: 0, ...fields } as E)
  }

  /** Strings the ring shares (paths, hosts): bounded, forgotten all at once when full. */
  #strings = new Map<string, string>()
  #intern(s: string): string {
    const known = this.#strings.get(s)
    if (known !== undefined) return known
    if (this.#strings.size >= MAX_INTERNED) this.#strings.clear()
    this.#strings.set(s, s)
    return s
  }

  /** Stamps an event built with `id: 0, time: 0` first (one object, no copy: the hot paths use it) and keeps it. */
  #store<E extends JournalEvent>(e: E): E {
    e.id = this.#nextId++
    e.time = round3(this.#now())
    for (const f of this.#followers) f.beforeRecord(e.id)
    if (this.#size < this.capacity) {
      this.#ring[(this.#start + this.#size) % this.capacity] = e
      this.#size++
    } else {
      this.#ring[this.#start] = e
      this.#start = (this.#start + 1) % this.capacity
    }
    for (const f of this.#followers) f.afterRecord(e)
    return e
  }

  /** The event with this id, if the ring still holds it. */
  at(id: number): JournalEvent | undefined {
    const i = id - this.oldestId
    return this.#size === 0 || i < 0 || i >= this.#size ? undefined : this.#ring[(this.#start + i) % this.capacity]
  }

  /** Matching events in id order (see EventQuery.limit). */
  query(q: EventQuery = {}): JournalEvent[] {
    const match = matcher(q)
    const limit = q.limit ?? Infinity
    const out: JournalEvent[] = []
    if (limit <= 0) return out
    if (q.since !== undefined) {
      // Ids are contiguous in the ring: start right after `since`.
      const skip = Math.max(0, Math.min(this.#size, q.since - this.oldestId + 1))
      for (let i = skip; i < this.#size && out.length < limit; i++) {
        const e = this.#ring[(this.#start + i) % this.capacity]!
        if (match(e)) out.push(e)
      }
      return out
    }
    for (let i = this.#size - 1; i >= 0 && out.length < limit; i--) {
      const e = this.#ring[(this.#start + i) % this.capacity]!
      if (match(e)) out.push(e)
    }
    return out.reverse()
  }

  /**
   * Follows new events (and, with `filter.since`, first replays the held ones after it). A follower
   * costs constant memory however slowly it reads: it is a cursor into the ring.
   */
  subscribe(opts: SubscribeOptions, deliver: Deliver): Subscription {
    const filter = opts.filter ?? {}
    const f = new Follower(this, deliver, matcher({ ...filter, since: 0 }), opts.maxBacklog ?? this.followBacklog, filter.since ?? this.lastId)
    this.#followers.add(f)
    f.resume()                                        // the replay, up to where the reader says stop
    return f
  }

  /** @internal Called by Subscription.close(). */
  unsubscribe(s: Subscription): void { this.#followers.delete(s as Follower) }

  /** Ends every follower (the API ends their responses on its own). */
  close(): void { for (const f of [...this.#followers]) f.close() }

  // Observer ------------------------------------------------------------------------------------

  // Once per link each: one object built whole, as httpRequest's (record's spread costs more per call).
  linkOpened(proxy: string, link: JournalLink): void {
    const e = this.#store<LinkOpenEvent>({ id: 0, time: 0, type: 'link_open', proxy, link: link.id, client: clientOf(link) })
    this.#opened.set(link, e.time)
  }

  linkClosed(proxy: string, link: JournalLink, reason: string, err?: Error): void {
    const now = this.#now()
    const opened = this.#opened.get(link)
    const e: LinkCloseEvent = {
      id: 0, time: 0, type: 'link_close', proxy, link: link.id, reason,
      bytes_upstream: link.bytesUpstream, bytes_downstream: link.bytesDownstream,
      duration_ms: round3(Math.max(0, opened !== undefined ? now - opened : Date.now() - link.openedAt)),
    }
    const code = errCode(err)
    if (code !== undefined) e.error = code
    this.#store(e)
  }

  faultApplied(proxy: string, fault: Pick<Fault, 'name' | 'type' | 'stream'>, link: Pick<JournalLink, 'id'>, request?: number): void {
    this.record<FaultEvent>({
      type: 'fault', proxy, link: link.id, toxic: fault.name, toxic_type: fault.type, stream: fault.stream,
      ...(request !== undefined ? { request: request + 1 } : {}),
    })
  }

  faultActed(proxy: string, fault: Pick<Fault, 'name' | 'type'>, link: Pick<JournalLink, 'id'>, action: FaultAction,
    request?: number, stream?: 'upstream' | 'downstream'): void {
    this.record<FaultActedEvent>({
      type: 'fault_acted', proxy, link: link.id, fault: fault.name, toxic_type: fault.type, action,
      ...(stream !== undefined ? { stream } : {}),
      ...(request !== undefined ? { request: request + 1 } : {}),
    })
  }

  httpRequest(proxy: string, link: Pick<JournalLink, 'id'>, r: HttpRequestInfo): void {
    // Once per HTTP request: one object, built whole (no spread), fields in the wire order. Paths and hosts
    // repeat: the ring keeps one string for each (a fresh copy per request would live as long as its event).
    const e: HttpRequestEvent = {
      id: 0, time: 0, type: 'http_request', proxy, link: link.id, method: r.method, path: this.#intern(r.path), status: r.status,
      source: r.source, latency_ms: round3(r.latencyMs), request: r.index + 1,
    }
    if (r.faults && r.faults.length > 0) e.faults = [...r.faults]
    const host = r.host
    if (host !== undefined) e.host = this.#intern(host)
    this.#store(e)
  }

  httpFallback(proxy: string, link: Pick<JournalLink, 'id'>, f: HttpFallbackInfo): void {
    this.record<HttpFallbackEvent>({ type: 'http_fallback', proxy, link: link.id, stream: f.stream, reason: f.reason, detail: f.detail, action: f.action })
  }

  redisCommand(proxy: string, link: Pick<JournalLink, 'id'>, c: RedisCommandInfo): void {
    const e: RedisCommandEvent = {
      id: 0, time: 0, type: 'redis_command', proxy, link: link.id, command: this.#intern(c.command), db: c.db,
      outcome: this.#intern(c.outcome), source: c.source, latency_ms: round3(c.latencyMs), request: c.index + 1,
    }
    if (c.key !== undefined) e.key = this.#intern(c.key)
    if (c.faults && c.faults.length > 0) e.faults = [...c.faults]
    this.#store(e)
  }

  pgQuery(proxy: string, link: Pick<JournalLink, 'id'>, q: PgQueryInfo): void {
    const e: PgQueryEvent = {
      id: 0, time: 0, type: 'pg_query', proxy, link: link.id, statement: q.statement, query: this.#intern(q.query),
      database: q.database, user: q.user, outcome: q.outcome, source: q.source, latency_ms: round3(q.latencyMs), request: q.index + 1,
    }
    if (q.faults && q.faults.length > 0) e.faults = [...q.faults]
    this.#store(e)
  }

  protocolFallback(proxy: string, link: Pick<JournalLink, 'id'>, f: ProtocolFallbackInfo): void {
    this.record<ProtocolFallbackEvent>({ type: 'protocol_fallback', proxy, link: link.id, protocol: f.protocol, stream: f.stream, detail: f.detail })
  }

  upstreamConnected(): void {}
  upstreamConnectError(): void {}
  bytesDropped(): void {}
  bytesCorrupted(): void {}
}

function clientOf(link: JournalLink): string {
  const { remoteAddress: host, remotePort: port } = link.client
  return host === undefined || port === undefined ? '' : formatAddress({ host, port })
}

/** Checks a query string's filter (`proxy`, `type` comma-separated; `since`, `limit` integers); throws a message. */
export function parseEventQuery(params: URLSearchParams): EventQuery {
  const q: EventQuery = {}
  const list = (k: string) => params.getAll(k).flatMap(v => v.split(',')).map(s => s.trim()).filter(s => s !== '')
  const proxies = list('proxy')
  if (proxies.length > 0) q.proxy = proxies
  const types = list('type')
  for (const t of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new TypeError(`type must be one of ${EVENT_TYPES.join(', ')}: ${t}`)
  }
  if (types.length > 0) q.type = types as JournalEventType[]
  for (const k of ['since', 'limit'] as const) {
    const v = params.get(k)
    if (v === null || v === '') continue
    if (!/^\d{1,15}$/.test(v)) throw new TypeError(`${k} must be a non-negative integer: ${v}`)
    q[k] = Number(v)
  }
  return q
}

/** The open links of a proxy, oldest first. */
export function openLinks(proxy: { readonly links: Iterable<Link> }): LinkInfo[] {
  return [...proxy.links].sort((a, b) => a.id - b.id).map(l => ({
    id: l.id,
    client: clientOf(l),
    opened_at: l.openedAt,
    idle_ms: Math.max(0, Math.round(l.clock.now() - l.lastActive)),
    bytes_upstream: l.bytesUpstream,
    bytes_downstream: l.bytesDownstream,
    toxics: [...l.applied.keys()].map(f => f.name),
    state: l.state,
  }))
}
