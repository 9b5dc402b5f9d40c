// Prometheus metrics, all in one place (the README's Metrics table lists each one). The data path
// pays nothing: bytes are the plain numbers each link already keeps, per-link events bump plain
// numbers in a per-proxy record, and prom-client only sees them at scrape time, in collect().
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client'
import type { Fault } from '../faults/fault.js'
import type { ObservedLink, Observer } from './observer.js'
import type { Proxy } from '../datapath/proxy.js'

export interface MetricsOptions {
  /** The live proxies (e.g. `() => registry.proxies.values()`), read at scrape time for live links' bytes. */
  coquin: () => Iterable<Proxy>
  /** Where to register; a fresh registry by default (there is no global one). */
  register?: PromRegistry
  /** Also export prom-client's process and Node.js metrics, prefixed `coquin_`. */
  process?: boolean
}

export interface Metrics {
  readonly register: PromRegistry
  /** Wire this into the Registry (with `observers()` to fan out): it keeps the counters. */
  readonly observer: Observer
  /** The exposition text and its content type, for a `/metrics` handler. */
  text(): Promise<{ contentType: string; body: string }>
}

/** Reasons a link ends, as the core names them; fault types (a fixed catalog) are also reasons. */
const REASON = /^[a-z][a-z0-9_]{0,39}$/
/** Distinct reasons / connect error codes kept per proxy before the rest count as `other`. */
const MAX_LABEL_VALUES = 32
/** Distinct toxic names kept per proxy (names are the user's; a suite that invents one per test is bounded). */
const MAX_TOXICS = 64
/** errno codes (ECONNREFUSED) and TLS verification codes (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID). */
const ERRNO = /^[A-Z][A-Z0-9_]{1,47}$/
const STREAMS = ['upstream', 'downstream', 'other'] as const

const streamIndex = (s: string): 0 | 1 | 2 => (s === 'upstream' ? 0 : s === 'downstream' ? 1 : 2)

type Quad = [number, number, number, number]

/** The bytes of one Toxiproxy label set (proxy, listener, upstream): received up/down, sent up/down. */
class Series {
  /** Bytes of this series' links that have closed. */
  readonly closed: Quad = [0, 0, 0, 0]
  /** Scratch: closed + live, recomputed at each scrape. */
  readonly now: Quad = [0, 0, 0, 0]
  /** The highest value reported so far: what is exported, so a counter never goes down. */
  readonly shown: Quad = [0, 0, 0, 0]
  /** Open links in this series. */
  links = 0
  constructor(readonly listener: string, readonly upstream: string) {}
}

/** Everything counted for one proxy name: plain numbers, exported at scrape time. */
class ProxyStats {
  opened = 0
  active = 0
  shed = 0
  readonly closedBy = new Map<string, number>()
  readonly connectErrors = new Map<string, number>()
  /** `client:CODE` / `upstream:CODE` → failed TLS handshakes. */
  readonly tlsFailures = new Map<string, number>()
  /** toxic name → type → links hit. */
  readonly faults = new Map<string, Map<string, number>>()
  /** HTTP fallbacks by reason (a fixed set, see fallbackReason). */
  readonly fallbacks = new Map<string, number>()
  /** What faults did, by `type:action` (types come from the catalog, actions from FAULT_ACTIONS: both bounded). */
  readonly actions = new Map<string, number>()
  /** Redis commands and PostgreSQL queries by `outcome:source` (outcomes bounded); fallbacks by `protocol:stream`. */
  readonly redis = new Map<string, number>()
  readonly pg = new Map<string, number>()
  readonly protocolFallbacks = new Map<string, number>()
  /** HTTP responses: [class 1xx..5xx][source upstream, coquin], flattened. */
  readonly responses: number[] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  readonly dropped: [number, number, number] = [0, 0, 0]
  readonly corrupted: [number, number, number] = [0, 0, 0]
  readonly series: Series[] = []
  current: Series | undefined
  constructor(
    readonly name: string,
    readonly connectSeconds: Histogram.Internal<'proxy'>,
    readonly linkSeconds: Histogram.Internal<'proxy'>,
  ) {}

  seriesFor(listener: string, upstream: string): Series {
    const c = this.current
    if (c && c.listener === listener && c.upstream === upstream) return c
    let s = this.series.find(x => x.listener === listener && x.upstream === upstream)
    if (!s) { s = new Series(listener, upstream); this.series.push(s) }
    this.current = s
    return s
  }
}

const bump = (m: Map<string, number>, key: string, by = 1): void => { m.set(key, (m.get(key) ?? 0) + by) }

/** Bound a label value to a small set: known values pass, a few new ones are admitted, the rest are `other`. */
function bounded(m: Map<string, number>, value: string, ok: boolean): string {
  if (!ok) return 'other'
  return m.has(value) || m.size < MAX_LABEL_VALUES ? value : 'other'
}

/** `outcome:source`, the outcome bounded as bounded() does (the map holds both sources of each outcome). */
function outcomeKey(m: Map<string, number>, outcome: string, source: string, shape: RegExp): string {
  const key = `${outcome}:${source}`
  if (!shape.test(outcome)) return `other:${source}`
  return m.has(key) || m.size < MAX_LABEL_VALUES * 2 ? key : `other:${source}`
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const register = opts.register ?? new PromRegistry()
  const state = new MetricsState(opts.coquin, [register])
  defineByteMetrics(state)
  defineLinkMetrics(state)
  defineFaultMetrics(state)
  if (opts.process) collectDefaultMetrics({ register, prefix: 'coquin_' })
  return {
    register,
    observer: metricsObserver(state),
    async text() { return { contentType: register.contentType, body: await register.metrics() } },
  }
}

/** What the observer counts and the collectors read: per-proxy stats, each open link's series, the two histograms. */
class MetricsState {
  readonly stats = new Map<string, ProxyStats>()
  /** The series each open link belongs to, fixed when it opened (a restart changes the listener). */
  readonly linkSeries = new WeakMap<ObservedLink, Series>()
  readonly connectHist: Histogram<'proxy'>
  readonly linkHist: Histogram<'proxy'>

  constructor(readonly coquin: () => Iterable<Proxy>, readonly registers: PromRegistry[]) {
    const state = this
    this.connectHist = new Histogram({
      name: 'coquin_upstream_connect_seconds', help: 'Time to connect to the upstream', labelNames: ['proxy'] as const, registers,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      collect() { state.prune() },
    })
    this.linkHist = new Histogram({
      name: 'coquin_link_duration_seconds', help: 'Link lifetime, accept to close', labelNames: ['proxy'] as const, registers,
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600],
      collect() { state.prune() },
    })
  }

  statsOf(proxy: string): ProxyStats {
    let st = this.stats.get(proxy)
    if (!st) {
      st = new ProxyStats(proxy, this.connectHist.labels(proxy), this.linkHist.labels(proxy))
      this.stats.set(proxy, st)
    }
    return st
  }

  /**
   * Forgets deleted proxies once their last link has closed, and an enabled proxy's old listen
   * addresses (a restart on port 0) once theirs have. Every collect() runs it first, so one scrape is
   * consistent whichever metric prom-client serialises first.
   */
  prune(): Map<string, Proxy> {
    const live = new Map<string, Proxy>()
    for (const p of this.coquin()) live.set(p.name, p)
    for (const st of this.stats.values()) {
      const p = live.get(st.name)
      if (!p) {
        if (st.active > 0) continue
        this.stats.delete(st.name)
        this.connectHist.remove(st.name)
        this.linkHist.remove(st.name)
        continue
      }
      if (!p.enabled) continue
      for (let i = st.series.length - 1; i >= 0; i--) {
        const s = st.series[i]!
        if (s.links > 0 || (s.listener === p.address && s.upstream === p.upstream)) continue
        st.series.splice(i, 1)
        if (st.current === s) st.current = undefined
      }
    }
    return live
  }

  /** Closed totals plus the bytes of live links, per series, never below what was shown before. */
  refresh(): void {
    const live = this.prune()
    for (const st of this.stats.values()) for (const s of st.series) for (let i = 0; i < 4; i++) s.now[i] = s.closed[i]!
    for (const p of live.values()) {
      for (const link of p.links) {
        const s = this.linkSeries.get(link)
        if (!s) continue // opened before this observer was wired: neither its open nor its close is counted
        s.now[0] += link.bytesUpstream
        s.now[1] += link.bytesDownstream
        s.now[2] += link.bytesSentUpstream
        s.now[3] += link.bytesSentDownstream
      }
    }
    for (const st of this.stats.values()) {
      for (const s of st.series) for (let k = 0; k < 4; k++) s.shown[k] = Math.max(s.shown[k]!, s.now[k]!)
    }
  }

  /**
   * A counter (or gauge) with a `proxy` label and more: at each scrape, after prune(), `each` reports every
   * proxy's values through `add(labels, n)`.
   */
  perProxy<L extends string>(
    name: string, help: string, labelNames: readonly L[],
    each: (st: ProxyStats, add: (labels: Record<L, string>, n: number) => void) => void,
    kind: 'counter' | 'gauge' = 'counter',
  ): void {
    const state = this
    const config = {
      name, help, labelNames: ['proxy', ...labelNames] as const, registers: this.registers,
      collect(this: Counter<string> | Gauge<string>) {
        state.prune()
        this.reset()
        for (const st of state.stats.values()) {
          each(st, (labels, n) => {
            const all = { proxy: st.name, ...labels }
            if (this instanceof Gauge) this.set(all, n)
            else this.inc(all, n)
          })
        }
      },
    }
    if (kind === 'gauge') new Gauge(config)
    else new Counter(config)
  }
}

/** Bytes: Toxiproxy's two counters (per listener and upstream) and coquin's per-direction total. */
function defineByteMetrics(state: MetricsState): void {
  const byteCounter = (name: string, help: string, offset: 0 | 2) => new Counter({
    name, help, registers: state.registers, labelNames: ['direction', 'proxy', 'listener', 'upstream'] as const,
    collect() {
      state.refresh()
      this.reset()
      for (const st of state.stats.values()) {
        for (const s of st.series) {
          // in Toxiproxy's (sorted) label order: scripts grep the text
          const base = { listener: s.listener, proxy: st.name, upstream: s.upstream }
          this.inc({ direction: 'upstream', ...base }, s.shown[offset]!)
          this.inc({ direction: 'downstream', ...base }, s.shown[offset + 1]!)
        }
      }
    },
  })
  byteCounter('toxiproxy_proxy_received_bytes_total', 'Bytes read from one side of a link (Toxiproxy-compatible)', 0)
  byteCounter('toxiproxy_proxy_sent_bytes_total', 'Bytes written to the far side of a link (Toxiproxy-compatible)', 2)
  new Counter({
    name: 'coquin_forwarded_bytes_total', help: 'Bytes written to the far side, per direction',
    labelNames: ['proxy', 'direction'] as const, registers: state.registers,
    collect() {
      state.refresh()
      this.reset()
      for (const st of state.stats.values()) {
        let up = 0, down = 0
        for (const s of st.series) { up += s.shown[2]!; down += s.shown[3]! }
        this.inc({ proxy: st.name, direction: 'upstream' }, up)
        this.inc({ proxy: st.name, direction: 'downstream' }, down)
      }
    },
  })
  const perStream = (name: string, help: string, pick: (st: ProxyStats) => number[]) =>
    state.perProxy(name, help, ['stream'], (st, add) => {
      const v = pick(st)
      for (let i = 0; i < STREAMS.length; i++) if (i < 2 || v[i]! > 0) add({ stream: STREAMS[i]! }, v[i]!)
    })
  perStream('coquin_bytes_dropped_total', 'Bytes a fault threw away', st => st.dropped)
  perStream('coquin_bytes_corrupted_total', 'Bytes a fault altered', st => st.corrupted)
}

/** Links and connections: opened, closed by reason, shed, active, upstream connect errors, TLS failures. */
function defineLinkMetrics(state: MetricsState): void {
  state.perProxy('coquin_links_opened_total', 'Client connections accepted', [], (st, add) => add({}, st.opened))
  state.perProxy('coquin_links_closed_total', 'Links ended, by reason', ['reason'], (st, add) => {
    for (const [reason, n] of st.closedBy) add({ reason }, n)
  })
  state.perProxy('coquin_connections_shed_total', 'Client connections reset at accept: the link limit (file descriptors) was reached', [],
    (st, add) => { if (st.shed > 0) add({}, st.shed) })
  state.perProxy('coquin_links_active', 'Links open now', [], (st, add) => add({}, st.active), 'gauge')
  state.perProxy('coquin_upstream_connect_errors_total', 'Failed upstream connections, by errno code', ['code'], (st, add) => {
    for (const [code, n] of st.connectErrors) add({ code }, n)
  })
  state.perProxy('coquin_tls_handshake_failures_total', 'Failed TLS handshakes, by side (client, upstream) and code', ['side', 'code'], (st, add) => {
    for (const [key, n] of st.tlsFailures) {
      const i = key.indexOf(':')
      add({ side: key.slice(0, i), code: key.slice(i + 1) }, n)
    }
  })
}

/** Faults and HTTP: faults applied, what they did, HTTP fallbacks, HTTP responses by class and source. */
function defineFaultMetrics(state: MetricsState): void {
  state.perProxy('coquin_faults_applied_total', 'Links (HTTP: requests) a fault hit', ['toxic', 'type'], (st, add) => {
    for (const [toxic, types] of st.faults) for (const [type, n] of types) add({ toxic, type }, n)
  })
  state.perProxy('coquin_fault_actions_total',
    'Times a fault acted on a link or request (at most once per link, fault, stream and action), by type and action', ['type', 'action'], (st, add) => {
      for (const [key, n] of st.actions) {
        const i = key.lastIndexOf(':')
        add({ type: key.slice(0, i), action: key.slice(i + 1) }, n)
      }
    })
  state.perProxy('coquin_http_fallbacks_total', 'HTTP links whose requests or responses could not be framed, by reason', ['reason'], (st, add) => {
    for (const [reason, n] of st.fallbacks) add({ reason }, n)
  })
  const split2 = (key: string): [string, string] => {
    const i = key.lastIndexOf(':')
    return [key.slice(0, i), key.slice(i + 1)]
  }
  state.perProxy('coquin_redis_commands_total', 'Redis commands, by outcome (ok, the error code, aborted) and by who answered (upstream, coquin)',
    ['outcome', 'source'], (st, add) => {
      for (const [key, n] of st.redis) { const [outcome, source] = split2(key); add({ outcome, source }, n) }
    })
  state.perProxy('coquin_pg_queries_total', 'PostgreSQL queries, by outcome (ok, the SQLSTATE, aborted) and by who answered (upstream, coquin)',
    ['outcome', 'source'], (st, add) => {
      for (const [key, n] of st.pg) { const [outcome, source] = split2(key); add({ outcome, source }, n) }
    })
  state.perProxy('coquin_protocol_fallbacks_total', 'Redis and PostgreSQL links that could not be framed and went on as TCP, by protocol and stream',
    ['protocol', 'stream'], (st, add) => {
      for (const [key, n] of st.protocolFallbacks) { const [protocol, stream] = split2(key); add({ protocol, stream }, n) }
    })
  state.perProxy('coquin_http_responses_total', 'HTTP responses sent to clients, by status class and by who answered (upstream, coquin)',
    ['class', 'source'], (st, add) => {
      for (let i = 0; i < 10; i++) {
        const n = st.responses[i]!
        if (n > 0) add({ class: `${(i >> 1) + 1}xx`, source: i & 1 ? 'coquin' : 'upstream' }, n)
      }
    })
}

/** The Observer side: per-link and per-fault events bump plain numbers; nothing per chunk. */
function metricsObserver(state: MetricsState): Observer {
  return {
    linkOpened(proxy, link) {
      const st = state.statsOf(proxy)
      st.opened++
      st.active++
      const s = st.seriesFor(link.listener, link.upstreamAddress)
      s.links++
      state.linkSeries.set(link, s)
    },
    linkClosed(proxy, link, reason) {
      const st = state.statsOf(proxy)
      bump(st.closedBy, bounded(st.closedBy, reason, REASON.test(reason)))
      st.linkSeconds.observe(Math.max(0, Date.now() - link.openedAt) / 1000)
      const s = state.linkSeries.get(link)
      if (!s) return
      state.linkSeries.delete(link)
      st.active--
      s.links--
      s.closed[0] += link.bytesUpstream
      s.closed[1] += link.bytesDownstream
      s.closed[2] += link.bytesSentUpstream
      s.closed[3] += link.bytesSentDownstream
    },
    upstreamConnected(proxy, seconds) {
      state.statsOf(proxy).connectSeconds.observe(seconds)
    },
    upstreamConnectError(proxy, code) {
      const st = state.statsOf(proxy)
      bump(st.connectErrors, bounded(st.connectErrors, code, ERRNO.test(code)))
    },
    connectionShed(proxy) {
      state.statsOf(proxy).shed++
    },
    tlsHandshakeFailed(proxy, side, code) {
      const st = state.statsOf(proxy)
      const key = `${side}:${code}`
      bump(st.tlsFailures, ERRNO.test(code) && (st.tlsFailures.has(key) || st.tlsFailures.size < MAX_LABEL_VALUES) ? key : `${side}:other`)
    },
    faultApplied(proxy, fault: Fault) {
      const st = state.statsOf(proxy)
      const toxic = st.faults.has(fault.name) || st.faults.size < MAX_TOXICS ? fault.name : 'other'
      let types = st.faults.get(toxic)
      if (!types) { types = new Map(); st.faults.set(toxic, types) }
      bump(types, fault.type)
    },
    faultActed(proxy, fault: Fault, _link, action) {
      bump(state.statsOf(proxy).actions, `${fault.type}:${action}`)
    },
    httpFallback(proxy, _link, f) {
      const st = state.statsOf(proxy)
      bump(st.fallbacks, bounded(st.fallbacks, f.reason, REASON.test(f.reason)))
    },
    redisCommand(proxy, _link, c) {
      const st = state.statsOf(proxy)
      bump(st.redis, outcomeKey(st.redis, c.outcome, c.source, /^[A-Za-z_]{1,24}$/))
    },
    pgQuery(proxy, _link, q) {
      const st = state.statsOf(proxy)
      bump(st.pg, outcomeKey(st.pg, q.outcome, q.source, /^(ok|aborted|[0-9A-Z]{5})$/))
    },
    protocolFallback(proxy, _link, f) {
      bump(state.statsOf(proxy).protocolFallbacks, `${f.protocol}:${f.stream}`)
    },
    httpRequest(proxy, _link, r) {
      const c = Math.floor(r.status / 100)
      if (c >= 1 && c <= 5) state.statsOf(proxy).responses[(c - 1) * 2 + (r.source === 'coquin' ? 1 : 0)]!++
    },
    bytesDropped(proxy, stream, bytes) {
      state.statsOf(proxy).dropped[streamIndex(stream)] += bytes
    },
    bytesCorrupted(proxy, stream, bytes) {
      state.statsOf(proxy).corrupted[streamIndex(stream)] += bytes
    },
  }
}
