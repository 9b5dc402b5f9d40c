// `coquin/client`: a typed client of the control API (Toxiproxy's REST API plus coquin's faults) for
// test suites. Plain fetch, no global state and no test-framework imports, so it works the same from
// tap, node:test, vitest or jest, against an embedded server or a coquin (or Toxiproxy) elsewhere.
//
//   const coquin = new Coquin()                       // http://127.0.0.1:8474
//   const redis = await coquin.proxy({ name: 'redis', listen: '127.0.0.1:26379', upstream: '127.0.0.1:6379' })
//   await redis.withFault({ type: 'latency', attributes: { latency: 200 } }, async () => { ... })

import { eventsQuery, ndjson, type DroppedNotice, type EventFilter, type JournalEvent, type LinkInfo } from './events.js'

export * from './events.js'

export type FaultStream = 'upstream' | 'downstream' | 'both'
/** A proxy's protocol: `tcp`, or a protocol whose faults act per message (as src/protocols/index.ts lists them). */
export type Protocol = 'tcp' | 'http' | 'redis' | 'postgres'

/** Attributes the core adds to every fault type. */
export interface CommonAttributes {
  /** Skip the first N links (HTTP: requests) this fault would hit. */
  after?: number
  /** Stop after hitting N links (HTTP: requests); 0 = no limit. */
  count?: number
}

/**
 * Attributes of the built-in fault types, for type checking `addFault({ type: 'latency', ... })`.
 * Other types (a newer server, Toxiproxy's own) are accepted with untyped attributes. Augment it with
 * declaration merging (`declare module 'coquin/client' { interface FaultAttributes { ... } }`).
 * test/client.ts checks it against behaviors/ (and prints the block to paste when they differ).
 */
export interface FaultAttributes {
  latency: {
    /** delay added to each chunk (ms); default 0. */
    latency?: number
    /** spread around latency (ms); default 0. */
    jitter?: number
    /** shape of the jitter; default "uniform". */
    distribution?: 'uniform' | 'normal' | 'pareto' | 'paretonormal'
  }
  noop: Record<never, never>
  bandwidth: {
    /** KB/s (1 KB = 1000 bytes, so also bytes per ms); 0 holds all data until the fault is removed; default 0. */
    rate?: number
  }
  limit_data: {
    /** bytes forwarded on the stream before the link is closed; default 0. */
    bytes?: number
  }
  reset_peer: {
    /** wait after the first data or FIN before the reset (ms); default 0. */
    timeout?: number
  }
  slicer: {
    /** mean size of a piece, in bytes (0 counts as 1); default 64. */
    average_size?: number
    /** bytes: each piece is average_size ± up to this much (capped at average_size - 1); default 0. */
    size_variation?: number
    /** wait between pieces, in MICROSECONDS (µs, not ms); default 0. */
    delay?: number
  }
  slow_close: {
    /** how long the FIN is held (ms); default 0. */
    delay?: number
  }
  timeout: {
    /** close the link this long after the fault starts on it; 0 = never close, only drop (ms); default 0. */
    timeout?: number
  }
  blackhole: {
    /** drop: bytes are lost; hold: bytes are held (bounded, with backpressure) and delivered on removal; default "drop". */
    mode?: 'drop' | 'hold'
  }
  corrupt: {
    /** chance that a byte has one bit flipped (0..1); default 0.0001. */
    probability?: number
    /** flip one bit in every Nth byte instead (bytes); 0 = off; default 0. */
    every_bytes?: number
  }
  hang_connect: Record<never, never>
  idle_reset: {
    /** time with no traffic in either direction before acting (ms); default 60000. */
    idle?: number
    /** rst: reset both sides; fin: close both sides; silent: forward nothing more and tell neither side; default "rst". */
    mode?: 'rst' | 'fin' | 'silent' | 'rst_on_reuse'
  }
  limit_time: {
    /** lifetime of the link, counted from when the fault started on it (ms); default 60000. */
    duration?: number
    /** fin: close both sides cleanly; rst: reset both sides; default "fin". */
    mode?: 'fin' | 'rst'
  }
  packet_loss: {
    /** share of chunks dropped (0..1); default 0.1. */
    loss_rate?: number
    /** weight of the previous drop decision in the next one (0..1): bursts; default 0. */
    correlation?: number
  }
  refuse: Record<never, never>
  slow_open: {
    /** delay before connecting upstream (ms); default 1000. */
    delay?: number
  }
  http_status: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** status code of the answer; default 503. */
    status?: number
    /** header fields of the answer (Content-Length and Connection are coquin's); default {}. */
    headers?: Record<string, string>
    /** body of the answer (none for 204 and 304, nor for HEAD requests); default "". */
    body?: string
  }
  http_throttle: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** requests per second allowed per key; default 10. */
    rate?: number
    /** bucket size: requests allowed at once; 0 = rate (at least 1); default 0. */
    burst?: number
    /** what a limit applies to: `bucket` (first path segment), `host_bucket` (the Host's first label), `path`, or `header:NAME`; default "bucket". */
    key?: string
    /** status code of the answer; default 503. */
    status?: number
    /** header fields of the answer; default {"Content-Type":"application/xml"}. */
    headers?: Record<string, string>
    /** body of the answer (default: an S3 SlowDown XML error). */
    body?: string
  }
  http_delay: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** delay added (ms); default 0. */
    delay?: number
    /** spread around delay (ms); default 0. */
    jitter?: number
    /** shape of the jitter; default "uniform". */
    distribution?: 'uniform' | 'normal'
    /** what waits: the request, the response's head, or the response's body; default "request". */
    phase?: 'request' | 'response_head' | 'response_body'
  }
  http_abort: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** where the response is cut; default "before_response". */
    phase?: 'before_response' | 'after_head' | 'after_bytes'
    /** body bytes passed before the cut, for after_bytes (bytes); default 0. */
    bytes?: number
    /** rst: reset both sides; fin: close both sides; default "rst". */
    mode?: 'rst' | 'fin'
  }
  http_close: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** close after every N-th response on a link, unannounced; 0 = unset; default 0. */
    every?: number
    /** close after the N-th request's response, with Connection: close; 0 = unset; default 0. */
    after_requests?: number
    /** fin: close both sides; rst: reset them; rst_on_reuse: tell no one, then reset both when the client sends its next request on the connection; default "fin". */
    mode?: 'fin' | 'rst' | 'rst_on_reuse'
  }
  http_header: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** edits of the request's head; default {}. */
    request?: { set?: Record<string, string>; remove?: string[] }
    /** edits of the response's head; default {}. */
    response?: { set?: Record<string, string>; remove?: string[] }
  }
  redis_error: {
    /** which commands the fault applies to (all given conditions must hold); default {}. */
    match?: { command?: string | string[]; key?: string; db?: number; client?: string[] }
    /** the error reply, without its `-`: the first word is its code. */
    error?: string
  }
  redis_delay: {
    /** which commands the fault applies to (all given conditions must hold); default {}. */
    match?: { command?: string | string[]; key?: string; db?: number; client?: string[] }
    /** delay added (ms); default 0. */
    delay?: number
    /** spread around delay (ms); default 0. */
    jitter?: number
    /** shape of the jitter; default "uniform". */
    distribution?: 'uniform' | 'normal'
    /** what waits: the command, or its reply; default "command". */
    phase?: 'command' | 'reply'
  }
  redis_abort: {
    /** which commands the fault applies to (all given conditions must hold); default {}. */
    match?: { command?: string | string[]; key?: string; db?: number; client?: string[] }
    /** rst: reset; fin: close; hang: silence, connection left open; default "rst". */
    mode?: 'rst' | 'fin' | 'hang'
  }
  pg_error: {
    /** which queries the fault applies to (all given conditions must hold); default {}. */
    match?: { query?: string; statement?: string | string[]; database?: string; user?: string; client?: string[] }
    /** the SQLSTATE (five digits or capitals); default "40001". */
    code?: string
    /** the error's message. */
    message?: string
    /** ERROR: the connection carries on; FATAL: it closes after the error; default "ERROR". */
    severity?: 'ERROR' | 'FATAL'
  }
  pg_delay: {
    /** which queries the fault applies to (all given conditions must hold); default {}. */
    match?: { query?: string; statement?: string | string[]; database?: string; user?: string; client?: string[] }
    /** delay added (ms); default 0. */
    delay?: number
    /** spread around delay (ms); default 0. */
    jitter?: number
    /** shape of the jitter; default "uniform". */
    distribution?: 'uniform' | 'normal'
  }
  pg_abort: {
    /** which queries the fault applies to (all given conditions must hold); default {}. */
    match?: { query?: string; statement?: string | string[]; database?: string; user?: string; client?: string[] }
    /** rst: reset; fin: close; hang: silence, connection left open; default "rst". */
    mode?: 'rst' | 'fin' | 'hang'
  }
}

export type AttributesOf<T extends string> =
  T extends keyof FaultAttributes ? FaultAttributes[T] & CommonAttributes : Record<string, unknown>

/** A fault to add: Toxiproxy's toxic. Defaults: stream downstream, toxicity 1, name `<type>_<stream>`. */
export interface FaultSpec<T extends string = string> {
  name?: string
  type: T
  stream?: FaultStream
  /** Share of links (HTTP: requests) the fault hits, 0 to 1. */
  toxicity?: number
  attributes?: AttributesOf<T>
}

/** A fault as the server reports it: every attribute listed, defaults filled in. */
export interface Fault {
  name: string
  type: string
  stream: FaultStream
  toxicity: number
  attributes: Record<string, unknown>
}

export interface FaultPatch {
  toxicity?: number
  /** Merged into the current attributes. */
  attributes?: Record<string, unknown>
}

export interface ProxySpec {
  name: string
  /** host:port to listen on; coquin defaults to 127.0.0.1:0 (a free port). */
  listen?: string
  upstream: string
  enabled?: boolean
  /** coquin's own: `http` adds HTTP framing, for HTTP faults. */
  protocol?: Protocol
  /** coquin's own, HTTP mode: honour `x-coquin-fault-*` request headers. */
  header_faults?: boolean
  /** coquin's own, HTTP mode: a link that cannot be framed as HTTP passes through unmatched (`pass`, default) or is closed. */
  http_fallback?: 'pass' | 'close'
  /** coquin's own: terminate TLS from clients and/or originate it to the upstream (README → TLS). */
  tls?: TlsOptions
  /** Faults to add when missing (matched by name, after defaults); existing ones are left as they are. */
  toxics?: FaultSpec[]
}

/** `tls` on a proxy. Files are paths on coquin's machine, or PEM text inline; `{}` takes the defaults. */
export interface TlsOptions {
  /** Terminate TLS from clients: this certificate and key, or (neither) a throwaway self-signed one. */
  listen?: { cert?: string; key?: string; handshake_timeout?: number }
  /** Originate TLS to the upstream: SNI / name checked, CAs to trust, or no verification. */
  upstream?: { servername?: string; ca?: string; insecure?: boolean }
}

/** A proxy as the server reports it. `listen` is the bound address. */
export interface ProxyInfo {
  name: string
  listen: string
  upstream: string
  enabled: boolean
  protocol?: Protocol
  header_faults?: boolean
  http_fallback?: 'pass' | 'close'
  /** As given (an inline key shows as `(inline)`). */
  tls?: TlsOptions
  toxics: Fault[]
}

export interface ProxyPatch {
  listen?: string
  upstream?: string
  enabled?: boolean
}

export interface CoquinOptions {
  /** Sent as `Authorization: Bearer <token>`, for a server started with --token. */
  token?: string
  /** Per request, ms (default 30 000). */
  timeout?: number
}

/** The server answered with an error: `message` is its `error` field, `status` the HTTP status. */
export class CoquinApiError extends Error {
  override name = 'CoquinApiError'
  constructor(
    message: string,
    readonly status: number,
    /** coquin's stable error code (`COQUIN_ERR_PROXY_NOT_FOUND`), when the server sends one. */
    readonly code?: string,
    readonly method?: string,
    readonly path?: string,
  ) { super(message) }
}

/** No answer from the control API: connection refused, DNS failure, timeout. `code` is e.g. ECONNREFUSED. */
export class CoquinUnreachableError extends Error {
  override name = 'CoquinUnreachableError'
  constructor(readonly url: string, readonly code: string, options?: { cause?: unknown }) {
    super(`cannot reach the control API at ${url}: ${code}`, options)
  }
}

const DEFAULT_URL = 'http://127.0.0.1:8474'

/** Accepts `http://host:port`, `host:port` or `:port`; drops a trailing slash. */
export function normalizeUrl(url: string): string {
  let u = url.trim()
  if (u.startsWith(':')) u = `127.0.0.1${u}`
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) u = `http://${u}`
  let parsed: URL
  try {
    parsed = new URL(u)
  } catch {
    throw new TypeError(`not a control API URL: ${JSON.stringify(url)} (expected e.g. ${DEFAULT_URL})`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`not a control API URL: ${JSON.stringify(url)} (expected http:// or https://)`)
  }
  return parsed.href.replace(/\/+$/, '')
}

function networkCode(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; errors?: { code?: string }[]; message?: string } }
  if (e?.name === 'TimeoutError') return 'timed out'
  const c = e?.cause
  return c?.code ?? c?.errors?.find(x => x.code)?.code ?? e?.code ?? c?.message ?? (err as Error)?.message ?? String(err)
}

const enc = encodeURIComponent

export class Coquin {
  readonly url: string
  readonly #token: string | undefined
  readonly #timeout: number

  constructor(url: string = DEFAULT_URL, opts: CoquinOptions = {}) {
    this.url = normalizeUrl(url)
    this.#token = opts.token
    this.#timeout = opts.timeout ?? 30_000
  }

  /**
   * One call to the control API: the parsed JSON answer (text if it is not JSON, undefined if empty).
   * Throws CoquinApiError for an error status, CoquinUnreachableError if there is no answer.
   */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (this.#token) headers.authorization = `Bearer ${this.#token}`
    let res: Response
    let text: string
    try {
      res = await fetch(this.url + path, {
        method, headers, signal: AbortSignal.timeout(this.#timeout),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
      text = await res.text()
    } catch (err) {
      throw new CoquinUnreachableError(this.url, networkCode(err), { cause: err })
    }
    let data: unknown = text === '' ? undefined : text
    if (text !== '') {
      try { data = JSON.parse(text) } catch { /* keep the text */ }
    }
    if (!res.ok) {
      const e = (typeof data === 'object' && data !== null ? data : {}) as { error?: unknown; message?: unknown; title?: unknown; code?: unknown; detail?: unknown }
      const said = [e.error, e.message, e.title].find(m => typeof m === 'string') as string | undefined
        ?? (typeof data === 'string' && data.trim() !== '' ? data.trim() : `HTTP ${res.status} ${res.statusText}`)
      const message = typeof e.detail === 'string' ? `${said}: ${e.detail}` : said
      throw new CoquinApiError(message, res.status, typeof e.code === 'string' ? e.code : undefined, method, path)
    }
    return data as T
  }

  /** The server's version string (`GET /version`). */
  async version(): Promise<string> {
    const v = await this.request<{ version?: string } | string>('GET', '/version')
    return typeof v === 'string' ? v.trim() : String(v?.version ?? '')
  }

  /** Every proxy, sorted by name. */
  async list(): Promise<ProxyHandle[]> {
    const all = await this.request<Record<string, ProxyInfo>>('GET', '/proxies')
    return Object.values(all ?? {}).sort((a, b) => a.name.localeCompare(b.name)).map(p => new ProxyHandle(this, p))
  }

  /** One proxy; CoquinApiError 404 if there is none by that name. */
  async get(name: string): Promise<ProxyHandle> {
    return new ProxyHandle(this, await this.request<ProxyInfo>('GET', `/proxies/${enc(name)}`))
  }

  /** Creates a proxy; CoquinApiError 409 if the name is taken. See proxy() to reuse one. */
  async create(spec: ProxySpec): Promise<ProxyHandle> {
    const { toxics, ...body } = spec
    const handle = new ProxyHandle(this, await this.request<ProxyInfo>('POST', '/proxies', body))
    for (const t of toxics ?? []) await handle.addFault(t)
    return toxics?.length ? handle.refresh() : handle
  }

  /**
   * Makes sure a proxy exists, like Toxiproxy's populate: one with the same name, listen and upstream
   * is reused as it is (open connections kept), one with other addresses is replaced. Then `enabled`
   * is applied if given, and each of `toxics` is added if no fault has its name.
   */
  async proxy(spec: ProxySpec): Promise<ProxyHandle> {
    return (await this.populate([spec]))[0]!
  }

  /** proxy() for several proxies at once, in one populate call. Proxies not listed are left alone. */
  async populate(specs: readonly ProxySpec[]): Promise<ProxyHandle[]> {
    const body = specs.map(({ toxics: _, ...rest }) => rest)
    const res = await this.request<{ proxies?: ProxyInfo[] }>('POST', '/populate', body)
    const handles = (res?.proxies ?? []).map(p => new ProxyHandle(this, p))
    for (const [i, spec] of specs.entries()) {
      const h = handles[i]
      if (!h) continue
      let changed = false
      if (spec.enabled !== undefined && spec.enabled !== h.enabled) { await h.update({ enabled: spec.enabled }); changed = true }
      if (spec.toxics?.length) {
        const have = new Set((await h.faults()).map(f => f.name))
        for (const t of spec.toxics) {
          const name = t.name || `${t.type}_${t.stream ?? 'downstream'}`
          if (!have.has(name)) { await h.addFault(t); have.add(name); changed = true }
        }
      }
      if (changed) await h.refresh()
    }
    return handles
  }

  /**
   * Enables every proxy and removes every fault (Toxiproxy's reset); on coquin, also heals every
   * partition and stops running scenarios (without undoing them). Open connections stay open.
   */
  async reset(): Promise<void> {
    await this.request('POST', '/reset')
  }

  // Partitions and scenarios (coquin only) ------------------------------------------------------

  /** Every partition (`GET /partitions`). */
  async partitions(): Promise<PartitionInfo[]> {
    return (await this.request<PartitionInfo[]>('GET', '/partitions')) ?? []
  }

  /**
   * Cuts a partition (`POST /partitions`): it acts on open links and new ones until `heal()` (or its
   * `duration`). CoquinApiError 409 if the name is taken, 404 for a proxy that does not exist, 400 for bad input.
   */
  async partition(spec: PartitionSpec): Promise<PartitionHandle> {
    return new PartitionHandle(this, await this.request<PartitionInfo>('POST', '/partitions', spec))
  }

  /** Cuts the partition, runs fn, and heals it when fn returns or throws (one healed already, by its duration or a reset, is fine). */
  async withPartition<R>(spec: PartitionSpec, fn: (partition: PartitionHandle) => R | Promise<R>): Promise<R> {
    const p = await this.partition(spec)
    let result: R
    try {
      result = await fn(p)
    } catch (err) {
      await p.heal().catch(() => {})
      throw err
    }
    await p.heal()
    return result
  }

  /** Every scenario the server knows: running ones, and the last few finished (`GET /scenarios`). */
  async scenarios(): Promise<ScenarioInfo[]> {
    return (await this.request<ScenarioInfo[]>('GET', '/scenarios')) ?? []
  }

  /**
   * Starts a scenario (`POST /scenarios`) and returns at once. `scenario` is a spec, YAML text, or the
   * path of a `.yaml`/`.yml` file (read here, sent as text: the server's issues name it, with line and
   * column). CoquinApiError 400 (code COQUIN_ERR_SCENARIO_INVALID) lists every issue.
   */
  async startScenario(scenario: ScenarioSpec | string): Promise<ScenarioHandle> {
    let body: unknown = scenario
    if (typeof scenario === 'string') {
      if (!scenario.includes('\n') && /\.ya?ml$/i.test(scenario.trim())) {
        const { readFile } = await import('node:fs/promises')
        body = { yaml: await readFile(scenario.trim(), 'utf8'), file: scenario.trim() }
      } else body = { yaml: scenario }
    }
    return new ScenarioHandle(this, await this.request<ScenarioInfo>('POST', '/scenarios', body))
  }

  /**
   * Runs a scenario to its end (see startScenario) and resolves with its final state. Rejects with
   * CoquinScenarioError if a step failed or someone stopped it (what it applied is undone then); if
   * `signal` aborts, stops it (undoing what it applied) and rejects with the signal's reason.
   */
  async scenario(scenario: ScenarioSpec | string, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ScenarioInfo> {
    const run = await this.startScenario(scenario)
    return run.wait(opts)
  }

  // The journal (coquin only) --------------------------------------------------------------------

  /** The journal's events (`GET /events`), oldest first: see EventFilter, and the helpers requestsFor, linksUsed, retryGaps. */
  async events(filter: EventFilter = {}): Promise<JournalEvent[]> {
    return (await this.request<JournalEvent[]>('GET', `/events${eventsQuery(filter)}`)) ?? []
  }

  /**
   * Follows events as they happen (`GET /events?follow=1`); with `since`, the held ones after it come
   * first. Ends when the signal aborts, the loop breaks, or the server ends the stream (after `limit`
   * events, or at shutdown). A `{ type: 'dropped' }` item says the reader fell too far behind.
   */
  async *follow(filter: EventFilter = {}, opts: { signal?: AbortSignal } = {}): AsyncGenerator<JournalEvent | DroppedNotice> {
    const path = `/events${eventsQuery(filter, { follow: '1' })}`
    const ac = new AbortController()
    const abort = () => ac.abort()
    if (opts.signal?.aborted) return
    opts.signal?.addEventListener('abort', abort, { once: true })
    try {
      let res: Response
      try {
        res = await fetch(this.url + path, {
          headers: { accept: 'application/x-ndjson', ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) },
          signal: ac.signal,
        })
      } catch (err) {
        if (ac.signal.aborted) return
        throw new CoquinUnreachableError(this.url, networkCode(err), { cause: err })
      }
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '')
        let e: { error?: unknown; code?: unknown } = {}
        try { e = JSON.parse(text) as typeof e } catch { /* not JSON */ }
        throw new CoquinApiError(typeof e.error === 'string' ? e.error : text.trim() || `HTTP ${res.status} ${res.statusText}`,
          res.status, typeof e.code === 'string' ? e.code : undefined, 'GET', path)
      }
      try {
        for await (const item of ndjson<JournalEvent | DroppedNotice>(res.body as unknown as AsyncIterable<Uint8Array>)) yield item
      } catch (err) {
        if (ac.signal.aborted) return
        throw err
      }
    } finally {
      opts.signal?.removeEventListener('abort', abort)
      ac.abort()                                   // a loop that broke early: close the connection
    }
  }

  /**
   * Waits, without polling, until `done(events)` holds for the events matching `filter` (those the
   * journal holds after `since`, default 0, then new ones as they come); resolves with them. Rejects
   * after `timeout` ms (default 5000) with the events seen so far in the message.
   */
  async waitForEvents(filter: EventFilter, done: (events: JournalEvent[]) => boolean, opts: { timeout?: number } = {}): Promise<JournalEvent[]> {
    const timeout = opts.timeout ?? 5000
    const seen: JournalEvent[] = []
    if (done(seen)) return seen
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), timeout)
    try {
      const { limit: _, ...rest } = filter
      for await (const item of this.follow({ ...rest, since: filter.since ?? 0 }, { signal: ac.signal })) {
        if (item.type === 'dropped') continue
        seen.push(item)
        if (done(seen)) return seen
      }
    } finally {
      clearTimeout(timer)
      ac.abort()
    }
    throw new Error(`timed out after ${timeout}ms waiting for events (${seen.length} seen: ${seen.map(e => e.type).join(', ') || 'none'})`)
  }
}

export class ProxyHandle {
  readonly name: string
  listen!: string
  upstream!: string
  enabled!: boolean
  protocol: Protocol | undefined
  tls: TlsOptions | undefined
  /** Faults as of the last answer from the server; faults() asks again. */
  toxics!: Fault[]
  readonly #client: Coquin

  constructor(client: Coquin, info: ProxyInfo) {
    this.#client = client
    this.name = info.name
    this.#set(info)
  }

  #set(info: ProxyInfo): void {
    this.listen = info.listen
    this.upstream = info.upstream
    this.enabled = info.enabled
    this.protocol = info.protocol
    this.tls = info.tls
    this.toxics = info.toxics ?? []
  }

  /** The PEM certificate this proxy shows its TLS clients (tls.listen), for them to trust. */
  async certificate(): Promise<string> {
    return this.#client.request<string>('GET', `${this.#path}/certificate`)
  }

  get #path(): string { return `/proxies/${enc(this.name)}` }

  /** The listening port, from `listen` (what follows the last colon). */
  get port(): number { return Number(this.listen.slice(this.listen.lastIndexOf(':') + 1)) }

  /** The listening host, from `listen`, without IPv6 brackets (`[::]:80` → `::`). */
  get host(): string {
    const h = this.listen.slice(0, this.listen.lastIndexOf(':'))
    return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
  }

  /** Reads the proxy again from the server; returns this. */
  async refresh(): Promise<this> {
    this.#set(await this.#client.request<ProxyInfo>('GET', this.#path))
    return this
  }

  /** Changes listen, upstream or enabled (a listen or upstream change restarts the proxy). */
  async update(patch: ProxyPatch): Promise<this> {
    this.#set(await this.#client.request<ProxyInfo>('POST', this.#path, patch))
    return this
  }

  /** Closes the listener and every open connection: new connections are refused. */
  disable(): Promise<this> { return this.update({ enabled: false }) }
  enable(): Promise<this> { return this.update({ enabled: true }) }

  async delete(): Promise<void> {
    await this.#client.request('DELETE', this.#path)
  }

  async faults(): Promise<Fault[]> {
    this.toxics = await this.#client.request<Fault[]>('GET', `${this.#path}/toxics`)
    return this.toxics
  }

  async fault(name: string): Promise<Fault> {
    return this.#client.request<Fault>('GET', `${this.#path}/toxics/${enc(name)}`)
  }

  /** Adds a fault; it applies to open connections at once. CoquinApiError 409 if the name is taken. */
  async addFault<T extends string>(spec: FaultSpec<T>): Promise<Fault> {
    return this.#client.request<Fault>('POST', `${this.#path}/toxics`, spec)
  }

  /** Changes toxicity and/or attributes (merged into the current ones); name, type and stream stay. */
  async updateFault(name: string, patch: FaultPatch): Promise<Fault> {
    return this.#client.request<Fault>('POST', `${this.#path}/toxics/${enc(name)}`, patch)
  }

  async removeFault(name: string): Promise<void> {
    await this.#client.request('DELETE', `${this.#path}/toxics/${enc(name)}`)
  }

  /**
   * Adds the fault, runs fn, and removes the fault when fn returns or throws (fn's error wins; a fault
   * already gone, e.g. after a reset, is fine). Resolves with fn's result.
   */
  async withFault<T extends string, R>(spec: FaultSpec<T>, fn: (fault: Fault) => R | Promise<R>): Promise<R> {
    const fault = await this.addFault(spec)
    let result: R
    try {
      result = await fn(fault)
    } catch (err) {
      await this.removeFault(fault.name).catch(() => {})
      throw err
    }
    await this.removeFault(fault.name).catch(ignoreNotFound)
    return result
  }

  /** This proxy's journal events, oldest first (`GET /events?proxy=<name>`). */
  events(filter: Omit<EventFilter, 'proxy'> = {}): Promise<JournalEvent[]> {
    return this.#client.events({ ...filter, proxy: this.name })
  }

  /** Follows this proxy's events: see Coquin.follow. */
  follow(filter: Omit<EventFilter, 'proxy'> = {}, opts: { signal?: AbortSignal } = {}): AsyncGenerator<JournalEvent | DroppedNotice> {
    return this.#client.follow({ ...filter, proxy: this.name }, opts)
  }

  /** Waits until done(events) holds for this proxy's events: see Coquin.waitForEvents. */
  waitForEvents(filter: Omit<EventFilter, 'proxy'>, done: (events: JournalEvent[]) => boolean, opts: { timeout?: number } = {}): Promise<JournalEvent[]> {
    return this.#client.waitForEvents({ ...filter, proxy: this.name }, done, opts)
  }

  /** The open links (connections) of this proxy, oldest first (`GET /proxies/<name>/links`). */
  async links(): Promise<LinkInfo[]> {
    return (await this.#client.request<LinkInfo[]>('GET', `${this.#path}/links`)) ?? []
  }

  /** Disables the proxy, runs fn, and enables it again when fn returns or throws. */
  async whileDisabled<R>(fn: () => R | Promise<R>): Promise<R> {
    await this.disable()
    let result: R
    try {
      result = await fn()
    } catch (err) {
      await this.enable().catch(() => {})
      throw err
    }
    await this.enable()
    return result
  }

  toJSON(): ProxyInfo {
    return {
      name: this.name, listen: this.listen, upstream: this.upstream, enabled: this.enabled,
      ...(this.protocol ? { protocol: this.protocol } : {}), ...(this.tls ? { tls: this.tls } : {}), toxics: this.toxics,
    }
  }
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof CoquinApiError && err.status === 404)) throw err
}

// Partitions and scenarios (coquin only) ---------------------------------------------------------

export type PartitionMode = 'blackhole' | 'hold' | 'reset' | 'refuse'

/** A partition to cut. Times are ms, or strings like `500ms`, `10s`, `1m`. */
export interface PartitionSpec {
  name: string
  /** The proxies whose paths are cut: the way A reaches B is the proxy in front of B that A uses. */
  proxies: string[]
  /** blackhole and hold only: `upstream` = client → server, `downstream` = server → client; default both. */
  direction?: FaultStream
  /**
   * blackhole (default): drop bytes, hold FINs; healing restores flow on surviving links (bytes sent meanwhile are lost).
   * hold: hold bytes (bounded, with backpressure) and FINs; healing delivers them, so requests in flight complete.
   * reset: RST matching open links and every new connection. refuse: refuse new connects (ECONNREFUSED; with
   * clients: accept and RST), open links untouched.
   */
  mode?: PartitionMode
  /** Cut only links from these client addresses or CIDRs (`127.0.0.2`, `10.0.0.0/8`, `::1/128`). */
  clients?: string[]
  /** Heal automatically after this long. */
  duration?: number | string
  /** Alternate cut (`down`) and healed (`up`), starting cut, until healed. */
  flap?: { up: number | string; down: number | string }
}

/** A partition as the server reports it: times in ms, defaults filled in. */
export interface PartitionInfo {
  name: string
  proxies: string[]
  direction: FaultStream
  mode: PartitionMode
  clients?: string[]
  duration?: number
  flap?: { up: number; down: number }
  /** `healed` during a flap's up phase. */
  state: 'cut' | 'healed'
  /** With `duration`: ms until it heals. */
  remaining_ms?: number
  /** With `flap`: ms until the next flip. */
  next_flip_ms?: number
}

export class PartitionHandle {
  readonly name: string
  info: PartitionInfo
  readonly #client: Coquin
  constructor(client: Coquin, info: PartitionInfo) {
    this.#client = client
    this.name = info.name
    this.info = info
  }

  /** Heals it (`DELETE /partitions/{name}`); one already healed (its duration, a reset) is fine. */
  async heal(): Promise<void> {
    await this.#client.request('DELETE', `/partitions/${enc(this.name)}`).catch(ignoreNotFound)
  }

  /** Reads it again; CoquinApiError 404 once it has healed. */
  async refresh(): Promise<PartitionInfo> {
    this.info = await this.#client.request<PartitionInfo>('GET', `/partitions/${enc(this.name)}`)
    return this.info
  }
}

/** One step of a scenario: `at` and exactly one of toxic, partition, proxy. */
export interface ScenarioStepSpec {
  /** From the start of the pass: ms, or `500ms`, `10s`, `1m`. */
  at: number | string
  toxic?: { proxy: string } & (
    | { add: FaultSpec }
    | { update: { name: string; attributes?: Record<string, unknown>; toxicity?: number } }
    | { remove: string })
  partition?: { cut: PartitionSpec } | { heal: string }
  proxy?: { name: string; enabled: boolean }
}

export interface ScenarioSpec {
  name?: string
  description?: string
  /** Passes over the timeline; default 1. */
  repeat?: number
  /** Length of one pass; default the last step's `at`. */
  duration?: number | string
  steps: ScenarioStepSpec[]
}

export interface ScenarioStepRecord {
  pass: number
  step: number
  /** When it was due, ms from the scenario's start. */
  at_ms: number
  /** What it did, for people: `add toxic slow (latency latency=200) to api`. */
  did: string
  error?: string
}

export interface ScenarioInfo {
  id: string
  name: string
  state: 'running' | 'done' | 'stopped' | 'failed'
  error?: string
  started_at: string
  elapsed_ms: number
  remaining_ms: number
  /** Total: repeat × pass_ms. */
  duration_ms: number
  pass_ms: number
  repeat: number
  /** Steps per pass. */
  steps: number
  next?: { pass: number; step: number; at_ms: number; does: string }
  /** Steps run so far (the newest 100). */
  log: ScenarioStepRecord[]
  /** What stopping (or a failed step) undid. */
  undone?: string[]
}

/** A scenario ended other than by running to its end: a step failed, or it was stopped. */
export class CoquinScenarioError extends Error {
  override name = 'CoquinScenarioError'
  constructor(readonly info: ScenarioInfo) {
    super(`scenario ${info.name} ${info.state}${info.error ? `: ${info.error}` : ''}`)
  }
}

export class ScenarioHandle {
  readonly id: string
  readonly name: string
  info: ScenarioInfo
  readonly #client: Coquin
  constructor(client: Coquin, info: ScenarioInfo) {
    this.#client = client
    this.id = info.id
    this.name = info.name
    this.info = info
  }

  async refresh(): Promise<ScenarioInfo> {
    this.info = await this.#client.request<ScenarioInfo>('GET', `/scenarios/${enc(this.id)}`)
    return this.info
  }

  /** Stops it and undoes what it applied (nothing if it had ended); resolves with its final state. */
  async stop(): Promise<ScenarioInfo> {
    if (this.info.state === 'running') await this.#client.request('DELETE', `/scenarios/${enc(this.id)}`)
    return this.refresh()
  }

  /** Polls until it ends: its final state if done, else CoquinScenarioError. See Coquin.scenario. */
  async wait(opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ScenarioInfo> {
    const poll = opts.pollMs ?? 50
    for (;;) {
      if (opts.signal?.aborted) {
        await this.stop().catch(() => {})
        throw opts.signal.reason
      }
      if (this.info.state !== 'running') break
      await new Promise<void>(resolve => {
        const done = () => { clearTimeout(timer); opts.signal?.removeEventListener('abort', done); resolve() }
        const timer = setTimeout(done, Math.min(poll, Math.max(1, this.info.remaining_ms)))
        opts.signal?.addEventListener('abort', done, { once: true })
      })
      if (!opts.signal?.aborted) await this.refresh()
    }
    if (this.info.state !== 'done') throw new CoquinScenarioError(this.info)
    return this.info
  }
}
