// `coquin/client`: a typed client of the control API (Toxiproxy's REST API plus coquin's faults) for
// test suites. Plain fetch, no global state and no test-framework imports, so it works the same from
// tap, node:test, vitest or jest, against an embedded server or a coquin (or Toxiproxy) elsewhere.
//
//   const coquin = new Coquin()                       // http://127.0.0.1:8474
//   const redis = await coquin.proxy({ name: 'redis', listen: '127.0.0.1:26379', upstream: '127.0.0.1:6379' })
//   await redis.withFault({ type: 'latency', attributes: { latency: 200 } }, async () => { ... })

export type FaultStream = 'upstream' | 'downstream' | 'both'

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
  blackhole: Record<never, never>
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
    mode?: 'rst' | 'fin' | 'silent'
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
    /** fin: close both sides; rst: reset them; default "fin". */
    mode?: 'fin' | 'rst'
  }
  http_header: {
    /** which requests the fault applies to (all given conditions must hold); default {}. */
    match?: { method?: string | string[]; path?: string; path_prefix?: string; path_regex?: string; headers?: Record<string, string>; query?: Record<string, string>; client?: string[] }
    /** edits of the request's head; default {}. */
    request?: { set?: Record<string, string>; remove?: string[] }
    /** edits of the response's head; default {}. */
    response?: { set?: Record<string, string>; remove?: string[] }
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
  protocol?: 'tcp' | 'http'
  /** Faults to add when missing (matched by name, after defaults); existing ones are left as they are. */
  toxics?: FaultSpec[]
}

/** A proxy as the server reports it. `listen` is the bound address. */
export interface ProxyInfo {
  name: string
  listen: string
  upstream: string
  enabled: boolean
  protocol?: 'tcp' | 'http'
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
      const e = (typeof data === 'object' && data !== null ? data : {}) as { error?: unknown; message?: unknown; title?: unknown; code?: unknown }
      const message = [e.error, e.message, e.title].find(m => typeof m === 'string') as string | undefined
        ?? (typeof data === 'string' && data.trim() !== '' ? data.trim() : `HTTP ${res.status} ${res.statusText}`)
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

  /** Enables every proxy and removes every fault (Toxiproxy's reset). Open connections stay open. */
  async reset(): Promise<void> {
    await this.request('POST', '/reset')
  }
}

export class ProxyHandle {
  readonly name: string
  listen!: string
  upstream!: string
  enabled!: boolean
  protocol: 'tcp' | 'http' | undefined
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
    this.toxics = info.toxics ?? []
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
      ...(this.protocol ? { protocol: this.protocol } : {}), toxics: this.toxics,
    }
  }
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof CoquinApiError && err.status === 404)) throw err
}
