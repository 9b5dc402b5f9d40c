// A proxy: a named listener that forwards each accepted connection to one upstream, through the
// faults configured on it. Faults are added, updated and removed on live links.
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import type { Clock } from '../core/clock.js'
import { Fault } from '../faults/fault.js'
import { Link, type LinkOwner } from './link.js'
import type { HttpFallbackPolicy } from '../protocols/http/index.js'
import { protocolMismatch, type Protocol } from '../protocols/index.js'
import type { Logger, ThrottledLog } from '../core/log.js'
import type { Observer } from '../observe/observer.js'
import type { Random } from '../core/random.js'
import type { LinkBudget } from './link-budget.js'
import { rememberRaw, tlsJSON, type ProxyTls } from './tls.js'
import { InvalidAddressError, InvalidRequestError, ListenError, ToxicExistsError, ToxicNotFoundError } from '../core/errors.js'

export interface HostPort { host: string; port: number }

/** Parses `host:port`, `[v6]:port`, `:port` or a bare port; hosts default to 127.0.0.1. */
export function parseAddress(field: string, value: unknown, defaultHost = '127.0.0.1'): HostPort {
  if (typeof value === 'number') value = String(value)
  if (typeof value !== 'string') throw new InvalidAddressError(field, String(value))
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (!m || !Number.isInteger(port) || port > 65535 || value.includes('/')) throw new InvalidAddressError(field, value)
  const host = m[1] ?? (m[2] || defaultHost)
  return { host, port }
}

/** Why a listen failed, in Go's words (Toxiproxy's messages). */
export function bindReason(e: NodeJS.ErrnoException): string {
  return e.code === 'EADDRINUSE' ? 'bind: address already in use'
    : e.code === 'EACCES' ? 'bind: permission denied'
    : e.code === 'EADDRNOTAVAIL' ? 'bind: cannot assign requested address'
    : e.message
}

/** The address a failed bind tried, resolved (`localhost:3310` → `127.0.0.1:3310`), as Go's error names it. */
export function triedAddress(e: NodeJS.ErrnoException & { address?: string; port?: number }, asked: HostPort): string {
  return formatAddress({ host: e.address ?? asked.host, port: e.port ?? asked.port })
}

export function formatAddress({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * A proxy name must come back whole from `/proxies/{name}` through any client: not `.` or `..` (which
 * URL normalisation removes), and no `/ ? # % \` or control characters.
 */
export const PROXY_NAME = /^(?!\.\.?$)[^/?#%\\\x00-\x1f\x7f]+$/
export const PROXY_NAME_RULE = 'not . or .., and no / ? # % \\ or control characters'

export interface ProxyOptions {
  name: string
  listen: string
  upstream: string
  enabled?: boolean
  protocol?: Protocol
  /** HTTP mode: honour `x-coquin-fault-*` request headers (Envoy style). */
  header_faults?: boolean
  /** HTTP mode: what to do with a link whose bytes cannot be framed: pass them through unmatched, or close it. */
  http_fallback?: HttpFallbackPolicy
  /** TLS to terminate and/or originate, loaded (src/datapath/tls.ts loadTls). */
  tls?: ProxyTls
}

export interface ProxyContext {
  log: Logger
  clock: Clock
  random: Random
  observer: Observer
  warn: ThrottledLog
  /** Shared by every proxy of a registry (src/datapath/link-budget.ts); unlimited when absent. */
  budget?: LinkBudget
}

export class Proxy implements LinkOwner {
  readonly name: string
  listen: string
  upstream: string
  enabled: boolean
  protocol: Protocol
  headerFaults: boolean
  httpFallback: HttpFallbackPolicy
  readonly tls: ProxyTls | undefined
  readonly links = new Set<Link>()
  /** TLS clients still in their handshake: no link (and no upstream connection) yet. */
  readonly #handshakes = new Map<net.Socket, () => void>()
  /** Accept errors the listener reported (EMFILE/ENFILE the kernel could not shed): it keeps listening. */
  acceptErrors = 0
  readonly faults: Fault[] = []
  /** The faults of the partitions cutting this proxy now (src/control/partition.ts): never listed as toxics. */
  readonly cuts: Fault[] = []
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  readonly observer: Observer
  #server: net.Server | null = null
  #bound: string | null = null
  /** The address bound last: a proxy on port 0 comes back on the same port when re-enabled, as in Toxiproxy. */
  #lastBound: string | null = null
  #upstreamTarget: HostPort
  #warn: ThrottledLog
  readonly #budget: LinkBudget
  /** Client connections reset at accept because the link budget was spent. */
  shed = 0

  constructor(opts: ProxyOptions, ctx: ProxyContext) {
    this.name = opts.name
    parseAddress('listen', opts.listen)
    this.#upstreamTarget = parseUpstream(opts.upstream)
    this.listen = opts.listen
    this.upstream = opts.upstream
    this.enabled = opts.enabled ?? true
    this.protocol = opts.protocol ?? 'tcp'
    this.headerFaults = opts.header_faults ?? false
    this.httpFallback = opts.http_fallback ?? 'pass'
    this.tls = opts.tls
    this.log = ctx.log.child({ proxy: opts.name })
    this.clock = ctx.clock
    this.random = ctx.random
    this.observer = ctx.observer
    this.#warn = ctx.warn
    this.#budget = ctx.budget ?? { max: Infinity, open: 0 }
  }

  /** The address actually bound (port 0 → the real port), or the requested one while disabled. */
  get address(): string { return this.#bound ?? this.#lastBound ?? this.listen }
  get port(): number { return parseAddress('listen', this.address).port }
  get connections(): number { return this.links.size }
  get listening(): boolean { return this.#server !== null }

  upstreamTarget(): HostPort { return this.#upstreamTarget }

  /** Listens (unless disabled or listening already); a start already under way is shared, never doubled. */
  start(): Promise<void> {
    this.#starting ??= this.#listen().finally(() => { this.#starting = null })
    return this.#starting
  }

  #starting: Promise<void> | null = null

  async #listen(): Promise<void> {
    if (!this.enabled || this.#server) return
    this.#wantListen = true
    const { host, port } = parseAddress('listen', port0(this.listen) && this.#lastBound ? this.#lastBound : this.listen)
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, c => this.#accept(c))
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host, port }, () => { server.off('error', reject); resolve() })
      })
    } catch (err) {
      server.close()
      throw new ListenError(triedAddress(err as NodeJS.ErrnoException, { host, port }), bindReason(err as NodeJS.ErrnoException)).because(err)
    }
    // Once listening (a bind error is the ListenError above, not this): EMFILE/ENFILE on accept that
    // libuv could not shed on its spare descriptor. The link budget (src/datapath/link-budget.ts) keeps us short of it.
    server.on('error', err => {
      this.acceptErrors++
      this.#warn('warn', `${this.name}:accept:${(err as NodeJS.ErrnoException).code}`, { err }, 'accept failed')
    })
    const a = server.address() as net.AddressInfo
    this.#server = server
    this.#bound = formatAddress({ host: a.address, port: a.port })
    this.#lastBound = this.#bound
    this.log.info({ listen: this.#bound, upstream: this.upstream }, 'proxy listening')
    if (this.#refusesAll()) {                             // bound once, for its port; closed while refusing
      this.#server = null
      this.#bound = null
      server.close()
      this.log.info({ listen: this.#lastBound }, 'proxy refusing connections: listener closed')
    }
  }

  #accept(client: net.Socket): void {
    if (this.#budget.open >= this.#budget.max) { this.#shedding(client); return }
    this.#budget.open++
    if (this.tls?.listen) this.#handshake(client, this.tls.listen)
    else this.#open(client)
  }

  /** Over the link budget: reset the connection now, count it, warn (rate-limited). */
  #shedding(client: net.Socket): void {
    this.shed++
    client.on('error', () => {})
    client.resetAndDestroy()
    this.observer.connectionShed?.(this.name)
    this.#warn('warn', `${this.name}:shed`, { max: this.#budget.max },
      'link limit reached (file descriptors): new connections are reset until links close')
  }

  #open(client: net.Socket): void {
    const link = new Link(this, client)
    this.links.add(link)
    link.start()
  }

  /** TLS from the client: the link (and its upstream connection) starts once the handshake is done. */
  #handshake(raw: net.Socket, t: NonNullable<ProxyTls['listen']>): void {
    raw.on('error', () => {})   // the TLS socket reports it
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: t.context })
    rememberRaw(secure, raw)
    this.#handshakes.set(secure, () => { done(); this.#budget.open--; secure.destroy(); raw.destroy() })
    const done = () => {
      this.#handshakes.delete(secure)
      timer.cancel()
      secure.off('error', fail)
      secure.off('close', left)
    }
    const fail = (err: NodeJS.ErrnoException | string) => {
      done()
      const code = typeof err === 'string' ? err : err.code ?? 'ERR_TLS'
      this.observer.tlsHandshakeFailed?.(this.name, 'client', code)
      this.#warn('warn', `${this.name}:tls:${code}`, { code, ...(typeof err === 'string' ? {} : { err: err.message }) }, 'client TLS handshake failed')
      this.#budget.open--
      secure.destroy()
      raw.destroy()
    }
    const left = () => fail('ECONNRESET')
    const timer = this.clock.setTimeout(() => fail('ETIMEDOUT'), t.handshakeTimeoutMs)
    secure.on('error', fail)
    secure.once('close', left)
    secure.once('secure', () => {
      done()
      secure.pause()   // as pauseOnConnect: nothing is read until the upstream connects
      this.#open(secure)
    })
  }

  linkClosed(link: Link): void {
    this.links.delete(link)
    this.#budget.open--
    if (this.links.size === 0) this.#drained?.()
  }

  /** Set while close() waits for open links to end by themselves. */
  #drained: (() => void) | undefined

  /** Stop listening and end every link now (Toxiproxy's disable, delete and restart). */
  async stop(reason = 'proxy_disabled'): Promise<void> { await this.close(0, reason) }

  /**
   * Stop listening at once; give open links up to graceMs to end by themselves (they keep flowing),
   * then end the rest with `reason`. A grace of 0 is stop().
   */
  async close(graceMs = 0, reason = 'shutdown'): Promise<void> {
    this.#wantListen = false
    await this.listenerSettled                            // a refusal being lifted may be binding right now
    const server = this.#server
    this.#server = null
    this.#bound = null
    const closed = server ? once(server, 'close') : undefined   // emitted once its last connection is gone
    server?.close()
    if (graceMs > 0 && this.links.size > 0) {
      // A real timer, not this.clock: shutdown is the process's business, not the data path's.
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>(resolve => {
        this.#drained = resolve
        timer = setTimeout(resolve, graceMs)
      }).finally(() => { clearTimeout(timer); this.#drained = undefined })
    }
    for (const abort of [...this.#handshakes.values()]) abort()
    for (const link of [...this.links]) link.destroy(reason)
    if (server) {
      await closed
      this.log.info('proxy stopped')
    }
  }

  /** Enabled means listening: a failed start leaves the proxy disabled, never enabled and deaf. */
  async setEnabled(enabled: boolean): Promise<void> {
    if (!enabled) { this.enabled = false; await this.stop(); return }
    this.enabled = true
    try { await this.start() } catch (err) { this.enabled = false; throw err }
  }

  /** Change listen/upstream (a restart that drops links, as Toxiproxy) and enabled. */
  async update(patch: { listen?: string; upstream?: string; enabled?: boolean }): Promise<void> {
    const listen = patch.listen ?? this.listen
    const upstream = patch.upstream ?? this.upstream
    if (listen !== this.listen) parseAddress('listen', listen)
    const target = upstream !== this.upstream ? parseUpstream(upstream) : this.#upstreamTarget
    const enabled = patch.enabled ?? this.enabled
    const restart = listen !== this.listen && listen !== this.#bound || upstream !== this.upstream
    if (restart) {
      await this.stop('proxy_restarted')
      if (listen !== this.listen) this.#lastBound = null
      this.listen = listen
      this.upstream = upstream
      this.#upstreamTarget = target
    }
    await this.setEnabled(enabled)
  }

  // Faults --------------------------------------------------------------------------------------

  fault(name: string): Fault {
    const f = this.faults.find(t => t.name === name)
    if (!f) throw new ToxicNotFoundError().withDetail(`proxy ${JSON.stringify(this.name)} has no toxic named ${JSON.stringify(name)}`)
    return f
  }

  /**
   * A connect-refusing fault or partition that covers every client and every connection (toxicity 1, no
   * client filter, no after/count) refuses for real: the listener is closed while it is in force, so a
   * connect fails with ECONNREFUSED as it does against a closed port (and as with `enabled: false`); open
   * links are left alone. Otherwise a refused connection is accepted and reset (ECONNRESET).
   */
  #refusesAll(): boolean {
    const all = (f: Fault) => f.behavior.connect !== undefined && f.toxicity === 1 && f.only === undefined &&
      !(Number(f.attributes.after) > 0) && !(Number(f.attributes.count) > 0) &&
      f.behavior.connect(f.attributes, () => 0).action === 'refuse'   // a probe: the seeded source is not drawn
    return this.faults.some(all) || this.cuts.some(all)
  }

  /** Resolves once the listener matches the faults (closed while they refuse every connect, open again after). */
  listenerSettled: Promise<void> = Promise.resolve()
  /** Started and not closed since: a lifted refusal may listen again. */
  #wantListen = false

  /**
   * Now, synchronously: closing stops accepting at once, and listening again binds within the call (an IP
   * address needs no lookup), so the next connect sees the change. A start under way checks on its own.
   */
  #syncListener(): void {
    if (!this.enabled || !this.#wantListen) return
    const refuse = this.#refusesAll()
    if (refuse && this.#server) {
      const server = this.#server
      this.#server = null
      this.#bound = null
      server.close()                                      // stops accepting now; open links go on
      this.log.info({ listen: this.#lastBound }, 'proxy refusing connections: listener closed')
    } else if (!refuse && !this.#server) {
      this.listenerSettled = this.start().catch(err => {
        this.log.error({ err: (err as Error).message }, 'proxy could not listen again after a refusal was lifted')
      })
    }
  }

  /** Adds a checked fault (see Catalog.normalize); open links draw for it at once. */
  addFault(f: Fault): Fault {
    if (this.faults.some(t => t.name === f.name)) throw new ToxicExistsError()
    const mismatch = protocolMismatch(f.behavior, this.protocol)
    if (mismatch) throw new InvalidRequestError(mismatch)
    this.faults.push(f)
    for (const link of this.links) link.apply(f)
    this.log.info({ toxic: f.name, type: f.type, stream: f.stream, toxicity: f.toxicity, attributes: f.attributes }, 'toxic added')
    if (f.behavior.connect) this.#syncListener()
    return f
  }

  /** New attributes (already merged and checked) and/or toxicity; links keep their draw. */
  updateFault(name: string, attributes: Readonly<Record<string, unknown>>, toxicity: number): Fault {
    const f = this.fault(name)
    f.attributes = attributes
    const redraw = toxicity !== f.toxicity
    f.toxicity = toxicity
    for (const link of this.links) {
      if (redraw) { link.unapply(f); link.apply(f) } else link.update(f)
    }
    this.log.info({ toxic: f.name, toxicity, attributes }, 'toxic updated')
    if (f.behavior.connect) this.#syncListener()
    return f
  }

  removeFault(name: string): void {
    const f = this.fault(name)
    this.faults.splice(this.faults.indexOf(f), 1)
    for (const link of [...this.links]) link.unapply(f)
    this.log.info({ toxic: name }, 'toxic removed')
    if (f.behavior.connect) this.#syncListener()
  }

  removeAllFaults(): void {
    for (const f of [...this.faults]) this.removeFault(f.name)
  }

  /** A partition cuts this proxy: open links draw for its fault at once, new links after their faults. */
  addCut(f: Fault): void {
    if (this.cuts.includes(f)) return
    this.cuts.push(f)
    for (const link of [...this.links]) link.apply(f)
    if (f.behavior.connect) this.#syncListener()
  }

  /** A partition heals: its stages leave the links (a blackhole passes on the FIN it held back). */
  removeCut(f: Fault): void {
    const i = this.cuts.indexOf(f)
    if (i < 0) return
    this.cuts.splice(i, 1)
    for (const link of [...this.links]) link.unapply(f)
    if (f.behavior.connect) this.#syncListener()
  }

  /** Toxiproxy's order: upstream faults first, then downstream; `both` once, with the upstream ones. */
  toxicsJSON() {
    const rank = (f: Fault) => (f.stream === 'downstream' ? 1 : 0)
    return [...this.faults].sort((a, b) => rank(a) - rank(b)).map(f => f.toJSON())
  }

  toJSON() {
    return {
      name: this.name, listen: this.address, upstream: this.upstream, enabled: this.enabled,
      protocol: this.protocol, ...(this.protocol === 'http' ? { header_faults: this.headerFaults, http_fallback: this.httpFallback } : {}),
      ...(this.tls ? { tls: tlsJSON(this.tls.spec) } : {}),
      toxics: this.toxicsJSON(),
    }
  }
}

const port0 = (listen: string) => parseAddress('listen', listen).port === 0

function parseUpstream(value: string): HostPort {
  if (typeof value === 'string' && /^[a-z]+:\/\//i.test(value)) {
    throw new InvalidAddressError('upstream', `${value} (give host:port, not a URL)`)
  }
  return parseAddress('upstream', value, 'localhost')
}
