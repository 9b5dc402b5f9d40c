// The coquin benchmark: direct vs the plain pipe proxy vs HAProxy (TCP mode, one thread) vs coquin (no
// fault, and a latency 0 fault on both streams), on 127.0.0.1; for HTTP keep-alive requests also coquin
// with `protocol: http` (no fault, and an http_status fault that matches every request at toxicity 0).
// Then coquin alone: bulk throughput with a bandwidth fault above the link's rate and with slicer, and
// the precision of its latency and bandwidth faults (requested vs observed). Each proxy runs alone in
// its own process (HAProxy under a worker that owns it); the upstream servers run in another; load is
// generated here. Targets alternate within every measurement, over several rounds, and the medians are
// printed as markdown tables and written to bench/results.md.
//
//   npm run bench                 3 rounds of 1.5 s measurements, 10,000 idle links
//   npm run bench -- --quick      1 short round (a smoke test; figures not for publishing)
//   npm run bench -- --only churn,precision --rounds 5 --duration 3000 --links 2000 --pin
import os from 'node:os'
import path from 'node:path'
import { existsSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Child, killChildren, pin, trackPid, untrackPid } from './ipc.js'
import { bulkDown, bulkUp, churn, destroyAll, httpKeepAlive, openIdle, pacedDown, pingPong, quantile } from './load.js'
import { ensureHaproxy, type Found } from './haproxy.js'
import { FD_MARGIN, fdLimit, respawnWithLimit } from './limits.js'
import type { Servers } from './servers.js'
import type { ProxyKind } from './proxy-worker.js'

type Kind = ProxyKind | 'haproxy'
type Target = 'direct' | Kind
const ALL_TARGETS: readonly Target[] = ['direct', 'bare', 'pipe', 'haproxy', 'coquin', 'coquin-before', 'coquin-fault', 'coquin-http', 'coquin-http-status']
/** Targets that carry any TCP stream (the HTTP-mode proxies carry HTTP only). */
const ALL_TCP_TARGETS: readonly Target[] = ['direct', 'bare', 'pipe', 'haproxy', 'coquin', 'coquin-before', 'coquin-fault']
const LABEL: Record<Target, string> = {
  direct: 'direct', bare: 'Node floor', pipe: 'pipe proxy', haproxy: 'HAProxy', coquin: 'coquin', 'coquin-before': 'coquin before', 'coquin-fault': 'coquin + latency 0',
  'coquin-http': 'coquin http', 'coquin-http-status': 'coquin http + http_status 0',
}
/** Short names for the ratio columns. */
const SHORT: Record<Target, string> = {
  direct: 'direct', bare: 'floor', pipe: 'pipe', haproxy: 'HAProxy', coquin: 'coquin', 'coquin-before': 'before', 'coquin-fault': 'coquin + lat. 0',
  'coquin-http': 'coquin http', 'coquin-http-status': 'http + status 0',
}

/** Scenario groups, in the order they run in a round; `--only` picks among them. */
const GROUPS = ['idle', 'bulk', 'upload', 'rtt', 'churn', 'http', 'faults', 'precision'] as const
type Group = typeof GROUPS[number]

const USAGE = `usage: npm run bench -- [--rounds N] [--quick] [--duration MS] [--links N] [--only GROUPS] [--pin]
  --rounds N      rounds, targets alternating in each (default 3; --quick: 1)
  --quick         one short round: a check that everything runs, not figures to publish
  --duration MS   measuring window of each throughput/latency run, after a warm-up (default 1500; --quick: 1000)
  --links N       idle links opened for the memory figure (default 10000; fewer if the open-file limit is too low)
  --only GROUPS   comma-separated scenario groups to run: ${GROUPS.join(', ')} (default: all)
  --pin           pin each proxy process to the last core, everything else to the others (taskset)
  --before DIR    also run coquin built in DIR (a checkout after npm ci && npm run build) as "coquin before",
                  for a before/after comparison of a change in one run`

const { values: argv } = parseArgs({
  options: {
    rounds: { type: 'string' }, quick: { type: 'boolean', default: false }, duration: { type: 'string' },
    links: { type: 'string' }, only: { type: 'string' }, pin: { type: 'boolean', default: false },
    before: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
  },
})
if (argv.help) { console.log(USAGE); process.exit(0) }

function usageError(msg: string): never {
  console.error(`${msg}\n${USAGE}`)
  process.exit(2)
}
function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) usageError(`--${name} must be a positive integer`)
  return n
}
const quick = argv.quick ?? false
const ROUNDS = positiveInt('rounds', argv.rounds, quick ? 1 : 3)
const DURATION = positiveInt('duration', argv.duration, quick ? 1000 : 1500)
const WARMUP = quick ? 200 : 300
const LINKS_ASKED = positiveInt('links', argv.links, 10_000)
const ONLY = new Set<Group>(argv.only === undefined ? GROUPS : argv.only.split(',').map(g => g.trim()).filter(Boolean).map(g => {
  if (!(GROUPS as readonly string[]).includes(g)) usageError(`--only: unknown group ${g}`)
  return g as Group
}))
if (ONLY.size === 0) usageError('--only: no group given')
const CORES = os.cpus().length
const PIN = (argv.pin ?? false) && CORES >= 2
const PROXY_CPU = String(CORES - 1)
const OTHER_CPUS = CORES > 2 ? `0-${CORES - 2}` : '0'
/** Concurrent connect-echo-close loops in the churn scenario. */
const CHURN_WORKERS = 32
/** Bulk-with-fault runs: a bandwidth far above what loopback carries, and slicer with Toxiproxy-like sizes. */
const FAST_RATE = 10_000_000 // KB/s = 10 GB/s
const LATENCIES = [1, 10, 100] as const // ms
const RATES = [100, 10_000, 100_000] as const // KB/s: 100 KB/s, 10 MB/s, 100 MB/s
const PRECISION_MS = Math.max(DURATION, 2000)

// The command as typed, for the report.
const ARGS = process.argv.slice(2)
const COMMAND = process.env['npm_lifecycle_event'] === 'bench'
  ? `npm run bench${ARGS.length ? ` -- ${ARGS.join(' ')}` : ''}`
  : `node ${path.relative(process.cwd(), process.argv[1] ?? 'dist/bench/run.js')}${ARGS.length ? ` ${ARGS.join(' ')}` : ''}`

// Descriptors: a proxy holds two per idle link. Re-run under a higher limit if a shell can raise it.
if (ONLY.has('idle')) {
  const code = await respawnWithLimit(2 * LINKS_ASKED + FD_MARGIN)
  if (code !== undefined) process.exit(code)
}
const FDS = fdLimit()
const LINKS = FDS ? Math.max(1, Math.min(LINKS_ASKED, Math.floor((FDS.soft - FD_MARGIN) / 2))) : LINKS_ASKED
const LINKS_NOTE = LINKS < LINKS_ASKED
  ? `${LINKS.toLocaleString('en-US')} idle links instead of ${LINKS_ASKED.toLocaleString('en-US')}: the open-file limit is ${FDS!.soft} ` +
    `(hard ${FDS!.hard}) and a proxy needs 2 descriptors per link; raise it (ulimit -n ${2 * LINKS_ASKED + FD_MARGIN}, as root) for the full figure`
  : undefined
/** HAProxy refuses to start when it cannot get 2 × maxconn + a few descriptors. */
const HAPROXY_MAXCONN = LINKS + 32

// Children die with us on every path: normal end, error, signal, watchdog.
process.on('exit', killChildren)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => { killChildren(); process.exit(128 + (os.constants.signals[sig] ?? 1)) })
}
process.on('uncaughtException', err => { console.error(err); killChildren(); process.exit(1) })
process.on('unhandledRejection', err => { console.error(err); killChildren(); process.exit(1) })

const progress = (msg: string) => process.stderr.write(`${msg}\n`)

// HAProxy, installed if missing and possible; skipped with a reason otherwise.
let haproxy: Found = { path: undefined, reason: 'not needed by the scenarios run (--only)' }
if ([...ONLY].some(g => g !== 'faults' && g !== 'precision')) {
  haproxy = ensureHaproxy(progress)
  if (haproxy.path === undefined) progress(`HAProxy column skipped: ${haproxy.reason}`)
}
const BEFORE = argv.before === undefined ? undefined : path.resolve(argv.before)
if (BEFORE !== undefined && !existsSync(path.join(BEFORE, 'dist', 'src', 'server.js'))) {
  usageError(`--before: ${BEFORE} has no dist/src/server.js (run npm ci && npm run build there)`)
}
if (BEFORE !== undefined) process.env['COQUIN_BEFORE'] = BEFORE
const present = (t: Target) => (t !== 'haproxy' || haproxy.path !== undefined) && (t !== 'coquin-before' || BEFORE !== undefined)
const TARGETS = ALL_TARGETS.filter(present)
const TCP_TARGETS = ALL_TCP_TARGETS.filter(present)
const MEM_TARGETS: readonly Kind[] = (['bare', 'pipe', 'haproxy', 'coquin', 'coquin-before', 'coquin-fault'] as const).filter(present)

// Metrics --------------------------------------------------------------------------------------------

type Unit = 'MB/s' | 'µs' | 'round trips/s' | 'requests/s' | 'connections/s' | 'KiB'
interface Metric { key: string; label: string; unit: Unit; direct: boolean }
const METRICS: readonly Metric[] = [
  { key: 'bulk1', label: 'bulk download, 1 conn', unit: 'MB/s', direct: true },
  { key: 'bulk8', label: 'bulk download, 8 conns', unit: 'MB/s', direct: true },
  { key: 'up1', label: 'bulk upload, 1 conn', unit: 'MB/s', direct: true },
  { key: 'rtt1.p50', label: '64 B echo, 1 conn, p50', unit: 'µs', direct: true },
  { key: 'rtt1.p99', label: '64 B echo, 1 conn, p99', unit: 'µs', direct: true },
  { key: 'rtt50.p50', label: '64 B echo, 50 conns, p50', unit: 'µs', direct: true },
  { key: 'rtt50.p99', label: '64 B echo, 50 conns, p99', unit: 'µs', direct: true },
  { key: 'rtt50.rate', label: '64 B echo, 50 conns', unit: 'round trips/s', direct: true },
  { key: 'churn.rate', label: `churn: connect, 64 B echo, close; ${CHURN_WORKERS} loops`, unit: 'connections/s', direct: true },
  { key: 'http50.rate', label: 'HTTP keep-alive GET, 50 conns', unit: 'requests/s', direct: true },
  { key: 'mem.rss', label: `RSS per idle link (${LINKS.toLocaleString('en-US')} links)`, unit: 'KiB', direct: false },
  { key: 'mem.marginal', label: `RSS per idle link, marginal (links ${(Math.floor(LINKS / 2) + 1).toLocaleString('en-US')}–${LINKS.toLocaleString('en-US')})`, unit: 'KiB', direct: false },
  { key: 'mem.heap', label: 'JS heap per idle link', unit: 'KiB', direct: false },
]

interface Scenario { key: string; group: Group; label: string; targets: readonly Target[]; run(ports: Servers): Promise<Record<string, number>> }

type Series = Map<string, Map<Target, number[]>>
const data: Series = new Map()
const cpu: Series = new Map()
function record(into: Series, key: string, target: Target, v: number): void {
  let byTarget = into.get(key)
  if (!byTarget) into.set(key, byTarget = new Map())
  let xs = byTarget.get(target)
  if (!xs) byTarget.set(target, xs = [])
  xs.push(v)
}
/** Proxy CPU per unit of work, per round: core-time ÷ the scenario's rate (the CPU share includes the warm-up). */
const cpuPerUnit: Series = new Map()
const PER_UNIT: Record<string, { rate: string; unit: string; scale: number }> = {
  bulk1: { rate: 'bulk1', unit: 'CPU s per GB', scale: 1000 },
  bulk8: { rate: 'bulk8', unit: 'CPU s per GB', scale: 1000 },
  up1: { rate: 'up1', unit: 'CPU s per GB', scale: 1000 },
  rtt50: { rate: 'rtt50.rate', unit: 'CPU µs per round trip', scale: 1e6 },
  churn: { rate: 'churn.rate', unit: 'CPU ms per 1,000 connections', scale: 1e6 },
  http50: { rate: 'http50.rate', unit: 'CPU µs per request', scale: 1e6 },
}
/** coquin-only figures: bulk with faults (MB/s) and bandwidth precision (KB/s), one value per round. */
const extra = new Map<string, number[]>()
const recordExtra = (key: string, v: number) => { let xs = extra.get(key); if (!xs) extra.set(key, xs = []); xs.push(v) }
/** Latency precision: every round trip's error (observed − no-fault p50 of the round − requested), ms, all rounds. */
const latencyErrors = new Map<number, number[]>()
let churnErrors = 0
const churnErrorKinds = new Set<string>()

const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!)

interface Stats { rss: number; heapUsed?: number; connections: number; gc: boolean }

/** Waits (bounded) until the proxy holds no connection any more, so runs do not overlap. */
async function settle(w: Child | undefined): Promise<void> {
  await sleep(100)
  if (!w) return
  const until = Date.now() + 10_000
  let n = await w.request<number>('connections')
  while (n > 0 && Date.now() < until) {
    await sleep(50)
    n = await w.request<number>('connections')
  }
  if (n > 0) progress(`  warning: ${w.name} still holds ${n} connections after 10 s`)
}

let gcExposed = true

/** RSS (and JS heap) growth of a proxy process per idle link (client + upstream socket), after a full GC. */
/**
 * Memory per idle link: RSS and JS heap growth over LINKS idle links, after a full GC, divided by LINKS; and
 * the marginal RSS per link over the second half alone (links LINKS/2 + 1 … LINKS), which leaves out what grows
 * once rather than per link (V8 sizing its young generation up under the burst of accepts, malloc arenas).
 */
async function measureMemory(w: Child, echoPort: number): Promise<{ rss: number; marginal: number; heap: number | undefined }> {
  destroyAll(await openIdle(echoPort, 20)) // warm the accept and connect paths first
  await settle(w)
  const before = await w.request<Stats>('stats')
  gcExposed &&= before.gc
  const half = Math.floor(LINKS / 2)
  const socks = await openIdle(echoPort, half)
  try {
    await sleep(100)
    const mid = await w.request<Stats>('stats', {}, 30_000)
    socks.push(...await openIdle(echoPort, LINKS - half))
    await sleep(100)
    const after = await w.request<Stats>('stats', {}, 30_000)
    if (after.connections !== LINKS) progress(`  warning: ${w.name} holds ${after.connections} links, expected ${LINKS}`)
    const heap = after.heapUsed === undefined || before.heapUsed === undefined ? undefined : (after.heapUsed - before.heapUsed) / LINKS / 1024
    return { rss: (after.rss - before.rss) / LINKS / 1024, marginal: (after.rss - mid.rss) / (LINKS - half) / 1024, heap }
  } finally {
    destroyAll(socks)
    await settle(w)
  }
}

// coquin's faults: bulk with a fault, and precision --------------------------------------------------

interface BulkFault { key: string; label: string; spec: Record<string, unknown> }
const BULK_FAULTS: readonly BulkFault[] = [
  {
    key: 'fault.bandwidth', label: `bandwidth, rate ${FAST_RATE.toLocaleString('en-US')} KB/s (10 GB/s, above the link)`,
    spec: { type: 'bandwidth', stream: 'downstream', attributes: { rate: FAST_RATE } },
  },
  {
    key: 'fault.slicer', label: 'slicer, 64 ± 32 B pieces, delay 0',
    spec: { type: 'slicer', stream: 'downstream', attributes: { average_size: 64, size_variation: 32, delay: 0 } },
  },
  {
    key: 'fault.slicer-mtu', label: 'slicer, 1460 ± 730 B pieces, delay 0',
    spec: { type: 'slicer', stream: 'downstream', attributes: { average_size: 1460, size_variation: 730, delay: 0 } },
  },
]

/** Runs `fn` with one fault on one of the coquin worker's proxies, removing it on every path. */
async function withFault<T>(w: Child, proxy: string, spec: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  const name = await w.request<string>('fault', { proxy, spec: { name: 'bench', ...spec } })
  try {
    return await fn()
  } finally {
    await w.request('unfault', { proxy, name })
    await settle(w)
  }
}

async function runFaults(w: Child, ports: Servers, r: number): Promise<void> {
  // The fast path to compare with: the bulk scenario's figure when it ran this round, else measured here.
  if (!ONLY.has('bulk')) {
    const v = await bulkDown(ports.source, 1, WARMUP, DURATION)
    record(data, 'bulk1', 'coquin', v)
    progress(`  ${'bulk, no fault'.padEnd(24)} ${'coquin'.padEnd(20)} ${fmt(v, 'MB/s')} MB/s`)
    await settle(w)
  }
  for (const f of rotate(BULK_FAULTS, r)) {
    const v = await withFault(w, 'source', f.spec, () => bulkDown(ports.source, 1, WARMUP, DURATION))
    recordExtra(f.key, v)
    progress(`  ${'bulk with a fault'.padEnd(24)} ${f.label.padEnd(20)} ${fmt(v, 'MB/s')} MB/s`)
  }
}

async function runPrecision(w: Child, ports: Servers): Promise<void> {
  // Latency: 64 B round trips over one connection with a latency fault on the way back, minus this
  // round's round trip without the fault.
  const base = await pingPong(ports.echo, 1, WARMUP, DURATION)
  progress(`  ${'latency precision'.padEnd(24)} ${'no fault'.padEnd(20)} p50 ${fmt(base.p50, 'µs')} µs`)
  await settle(w)
  for (const ms of LATENCIES) {
    const window = Math.max(DURATION, 30 * ms) // at least ~30 round trips at 100 ms
    const rt = await withFault(w, 'echo', { type: 'latency', stream: 'downstream', attributes: { latency: ms, jitter: 0 } },
      () => pingPong(ports.echo, 1, Math.max(WARMUP, 3 * ms), window))
    let errs = latencyErrors.get(ms)
    if (!errs) latencyErrors.set(ms, errs = [])
    for (const x of rt.sorted) errs.push((x - base.p50) / 1000 - ms)
    progress(`  ${'latency precision'.padEnd(24)} ${`${ms} ms`.padEnd(20)} added p50 ${((rt.p50 - base.p50) / 1000).toFixed(2)} ms, ` +
      `p99 ${((rt.p99 - base.p50) / 1000).toFixed(2)} ms (${rt.samples} round trips)`)
  }
  // Bandwidth: bytes read through a bandwidth fault over a window of at least 2 s, after a warm-up
  // longer than the meter's catch-up allowance.
  for (const rate of RATES) {
    const m = await withFault(w, 'source', { type: 'bandwidth', stream: 'downstream', attributes: { rate } },
      () => pacedDown(ports.source, Math.max(WARMUP, 500), PRECISION_MS))
    const kbs = m.rate * 1000
    recordExtra(`bw.${rate}`, kbs)
    progress(`  ${'bandwidth precision'.padEnd(24)} ${`${rate.toLocaleString('en-US')} KB/s`.padEnd(20)} ` +
      `${Math.round(kbs).toLocaleString('en-US')} KB/s (${pct((kbs - rate) / rate)})`)
  }
}

// The run ----------------------------------------------------------------------------------------------

const PROXY_WORKER = new URL('./proxy-worker.js', import.meta.url)
const WORKER_FILE = (k: Kind): URL => k === 'haproxy' ? new URL('./haproxy-worker.js', import.meta.url) : PROXY_WORKER

function startWorker(k: Kind): Child {
  return k === 'haproxy'
    ? new Child(k, WORKER_FILE(k), [haproxy.path!, String(HAPROXY_MAXCONN)])
    : new Child(k, WORKER_FILE(k), [k])
}

async function main(): Promise<void> {
  const startedAt = new Date()
  const loadStart = os.loadavg()
  const t0 = performance.now()

  const servers = new Child('servers', new URL('./server-worker.js', import.meta.url))
  const ports = await servers.request<Servers>('ports')
  if (PIN) {
    if (!pin(process.pid, OTHER_CPUS) || !pin(servers.pid, OTHER_CPUS)) progress('warning: taskset failed; not pinned')
  }
  const sunk = () => servers.request<number>('sunk')

  const all: Scenario[] = [
    { key: 'bulk1', group: 'bulk', label: 'bulk download, 1 conn', targets: TCP_TARGETS, run: async p => ({ bulk1: await bulkDown(p.source, 1, WARMUP, DURATION) }) },
    { key: 'bulk8', group: 'bulk', label: 'bulk download, 8 conns', targets: TCP_TARGETS, run: async p => ({ bulk8: await bulkDown(p.source, 8, WARMUP, DURATION) }) },
    { key: 'up1', group: 'upload', label: 'bulk upload, 1 conn', targets: TCP_TARGETS, run: async p => ({ up1: await bulkUp(p.sink, 1, WARMUP, DURATION, sunk) }) },
    {
      key: 'rtt1', group: 'rtt', label: '64 B echo, 1 conn', targets: TCP_TARGETS, run: async p => {
        const r = await pingPong(p.echo, 1, WARMUP, DURATION)
        return { 'rtt1.p50': r.p50, 'rtt1.p99': r.p99 }
      },
    },
    {
      key: 'rtt50', group: 'rtt', label: '64 B echo, 50 conns', targets: TCP_TARGETS, run: async p => {
        const r = await pingPong(p.echo, 50, WARMUP, DURATION)
        return { 'rtt50.p50': r.p50, 'rtt50.p99': r.p99, 'rtt50.rate': r.rate }
      },
    },
    {
      key: 'churn', group: 'churn', label: 'connection churn', targets: TCP_TARGETS, run: async p => {
        const c = await churn(p.echo, CHURN_WORKERS, WARMUP, DURATION)
        churnErrors += c.errors
        if (c.firstError) churnErrorKinds.add(c.firstError)
        return { 'churn.rate': c.rate }
      },
    },
    {
      key: 'http50', group: 'http', label: 'HTTP keep-alive, 50 conns', targets: TARGETS,
      run: async p => ({ 'http50.rate': await httpKeepAlive(p.http, 50, WARMUP, DURATION) }),
    },
  ]
  const scenarios = all.filter(s => ONLY.has(s.group))
  const kinds = new Set<Kind>()
  for (const s of scenarios) for (const t of s.targets) if (t !== 'direct') kinds.add(t)
  if (ONLY.has('idle')) for (const k of MEM_TARGETS) kinds.add(k)
  if (ONLY.has('faults') || ONLY.has('precision')) kinds.add('coquin')
  const KINDS = TARGETS.filter((t): t is Kind => t !== 'direct' && kinds.has(t))

  // Every run is bounded on its own; this catches anything that is not.
  const perRun = WARMUP + DURATION + 12_000
  const budgetMs = 60_000 + ROUNDS * (15_000 + KINDS.length * 30_000 + (ONLY.has('idle') ? MEM_TARGETS.length * 90_000 : 0) +
    scenarios.length * TARGETS.length * perRun + (BULK_FAULTS.length + 1) * perRun +
    (LATENCIES.length + 1) * perRun + LATENCIES.reduce((n, ms) => n + 33 * ms, 0) + RATES.length * (PRECISION_MS + 13_000))
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${Math.round(budgetMs / 1000)} s; giving up`)
    killChildren()
    process.exit(3)
  }, budgetMs)

  for (let r = 0; r < ROUNDS; r++) {
    progress(`round ${r + 1}/${ROUNDS}`)
    const workers = new Map<Kind, Child>()
    const portsOf = new Map<Target, Servers>([['direct', ports]])
    const haproxyPids: number[] = []
    try {
      /** HAProxy is a peer, not the subject: if it fails, its column goes, the bench goes on. */
      const peerFailed = async (err: unknown) => {
        const why = err instanceof Error ? err.message : String(err)
        haproxy = { path: undefined, reason: `HAProxy failed during the run (${why})` }
        progress(`  HAProxy dropped from the rest of the run: ${why}`)
        const w = workers.get('haproxy')
        workers.delete('haproxy')
        portsOf.delete('haproxy')
        await w?.stop()
      }
      for (const k of KINDS) {
        if (k === 'haproxy' && haproxy.path === undefined) continue
        const w = startWorker(k)
        workers.set(k, w)
        try {
          portsOf.set(k, await w.request<Servers>('start', { upstreams: ports }))
          let pid = w.pid
          if (k === 'haproxy') {
            pid = await w.request<number>('pid')
            trackPid(pid)
            haproxyPids.push(pid)
          }
          if (PIN && !pin(pid, PROXY_CPU)) progress(`warning: taskset failed for ${k}`)
        } catch (err) {
          if (k !== 'haproxy') throw err
          await peerFailed(err)
        }
      }
      // Memory first, while the proxy processes are fresh.
      if (ONLY.has('idle')) {
        for (const k of rotate(MEM_TARGETS, r)) {
          const w = workers.get(k)
          if (!w) continue
          try {
            const m = await measureMemory(w, portsOf.get(k)!.echo)
            record(data, 'mem.rss', k, m.rss)
            record(data, 'mem.marginal', k, m.marginal)
            if (m.heap !== undefined) record(data, 'mem.heap', k, m.heap)
            progress(`  ${'idle links'.padEnd(24)} ${LABEL[k].padEnd(20)} ${m.rss.toFixed(1)} KiB RSS/link, ${m.marginal.toFixed(1)} marginal`)
          } catch (err) {
            if (k !== 'haproxy') throw err
            await peerFailed(err)
          }
        }
      }
      for (const [i, s] of scenarios.entries()) {
        for (const t of rotate(s.targets, r + i)) {
          if (!portsOf.has(t)) continue
          const w = t === 'direct' ? undefined : workers.get(t)
          try {
            const c0 = await w?.request<number>('cpu')
            const start = performance.now()
            const values = await s.run(portsOf.get(t)!)
            const wall = performance.now() - start
            const c1 = await w?.request<number>('cpu')
            for (const [k, v] of Object.entries(values)) record(data, k, t, v)
            if (c0 !== undefined && c1 !== undefined) {
              const busy = (c1 - c0) / 1000 / wall   // share of one core
              record(cpu, s.key, t, busy * 100)
              const per = PER_UNIT[s.key]
              const rate = per && values[per.rate]
              if (per && rate) record(cpuPerUnit, s.key, t, busy * per.scale / rate)
            }
            const shown = Object.entries(values).map(([k, v]) => `${k} ${fmt(v, unitOf(k))}`).join(', ')
            progress(`  ${s.label.padEnd(24)} ${LABEL[t].padEnd(20)} ${shown}`)
            await settle(w)
          } catch (err) {
            if (t !== 'haproxy') throw err
            await peerFailed(err)
          }
        }
      }
      const c = workers.get('coquin')
      if (c && ONLY.has('faults')) await runFaults(c, portsOf.get('coquin')!, r)
      if (c && ONLY.has('precision')) await runPrecision(c, portsOf.get('coquin')!)
    } finally {
      await Promise.all([...workers.values()].map(w => w.stop()))
      for (const pid of haproxyPids) {
        // The worker kills HAProxy as it exits; make sure, then forget the pid.
        try { process.kill(pid, 'SIGKILL') } catch { /* gone, as expected */ }
        untrackPid(pid)
      }
    }
  }
  await servers.stop()
  clearTimeout(watchdog)

  const report = render(startedAt, loadStart, os.loadavg(), (performance.now() - t0) / 1000, scenarios)
  console.log(report)
  const out = fileURLToPath(new URL('../../bench/results.md', import.meta.url))
  writeFileSync(out, report + '\n')
  progress(`written to ${out}`)
}

// Report -----------------------------------------------------------------------------------------------

const unitOf = (key: string): Unit => METRICS.find(m => m.key === key)?.unit ?? 'MB/s'

function fmt(v: number, unit: Unit): string {
  switch (unit) {
    case 'MB/s': return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)
    case 'µs': return v.toFixed(0)
    case 'round trips/s':
    case 'connections/s':
    case 'requests/s': return Math.round(v).toLocaleString('en-US')
    case 'KiB': return v.toFixed(1)
  }
}
const pct = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(2)} %`
const fmtMs = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)} ms`

function median(xs: readonly number[] | undefined): number | undefined {
  if (!xs || xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '—' : (a / b).toFixed(2)

function render(startedAt: Date, loadStart: number[], loadEnd: number[], seconds: number, scenarios: Scenario[]): string {
  const cpus = os.cpus()
  const la = (l: number[]) => l.map(x => x.toFixed(2)).join(' ')
  const lines: string[] = []
  lines.push('## coquin benchmark', '')
  lines.push(`- command: \`${COMMAND}\``)
  lines.push(`- date: ${startedAt.toISOString()}`)
  lines.push(`- machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ` +
    `${os.type()} ${os.release()} ${os.arch()}`)
  lines.push(`- Node ${process.version}; ${haproxy.path !== undefined ? `HAProxy ${haproxy.version} (TCP mode, nbthread 1, maxconn ${HAPROXY_MAXCONN}, no logging)` : `HAProxy skipped: ${haproxy.reason}`}`)
  lines.push(`- load average (1/5/15 min): ${la(loadStart)} at start, ${la(loadEnd)} at end`)
  // Taken before the bench started, the 1-minute average shows other work (the bench itself drives it to 2-3).
  if ((loadStart[0] ?? 0) > 1.5) {
    lines.push('- **the machine was busy with other work when this run started (load average above 1.5): these figures are noisy**')
  }
  lines.push(`- run: ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}${quick ? ' (--quick)' : ''}, ${WARMUP} ms warm-up + ${DURATION} ms per measurement, ` +
    `${ONLY.size < GROUPS.length ? `groups ${[...ONLY].join(', ')}, ` : ''}` +
    `${PIN ? `proxy pinned to CPU ${PROXY_CPU}, the rest to CPU ${OTHER_CPUS}` : 'not pinned'}, ${seconds.toFixed(0)} s in all`)
  if (ONLY.has('idle')) {
    lines.push(`- idle links: ${LINKS.toLocaleString('en-US')}; open-file limit ${FDS ? `${FDS.soft} (hard ${FDS.hard})` : 'unknown'}`)
    if (LINKS_NOTE) lines.push(`- **${LINKS_NOTE}**`)
  }
  if (churnErrors > 0) lines.push(`- **churn: ${churnErrors} failed connections (${[...churnErrorKinds].join(', ')}); the rates count completed ones**`)
  lines.push('')

  const v = (key: string, t: Target) => median(data.get(key)?.get(t))
  const metrics = METRICS.filter(m => data.has(m.key))
  if (metrics.length > 0) {
    const targets = TARGETS.filter(t => metrics.some(m => data.get(m.key)?.has(t)))
    const proxied = targets.filter(t => t !== 'direct')
    const peers: Target[] = (['haproxy', 'pipe', 'bare', 'coquin-before'] as const).filter(p => targets.includes(p) && targets.includes('coquin'))
    lines.push(`| metric | ${targets.map(t => LABEL[t]).join(' | ')} | ${proxied.map(t => `${SHORT[t]} ÷ direct`).join(' | ')}` +
      `${peers.map(p => ` | coquin ÷ ${SHORT[p]}`).join('')} |`)
    lines.push(`|---|${[...targets, ...proxied, ...peers].map(() => '--:').join('|')}|`)
    for (const m of metrics) {
      const d = m.direct ? v(m.key, 'direct') : undefined
      const cell = (t: Target) => {
        const x = v(m.key, t)
        if (x === undefined) return '—'
        const added = m.unit === 'µs' && t !== 'direct' && d !== undefined ? ` (${x >= d ? '+' : '−'}${fmt(Math.abs(x - d), m.unit)})` : ''
        return fmt(x, m.unit) + added
      }
      const toDirect = (t: Target) => (m.direct && v(m.key, t) !== undefined ? ratio(v(m.key, t), d) : '—')
      lines.push(`| ${m.label} (${m.unit}) | ${targets.map(cell).join(' | ')} | ${proxied.map(toDirect).join(' | ')}` +
        `${peers.map(p => ` | ${ratio(v(m.key, 'coquin'), v(m.key, p))}`).join('')} |`)
    }
    lines.push('')
    const has = (g: Group) => ONLY.has(g)
    const notes = [
      `Medians of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, targets alternating within each. Ratios are figure ÷ figure: ` +
        'for MB/s and per-second figures higher is better, for µs and KiB lower is better; (+N) is the latency added over direct.',
      '"Node floor" is the least a Node proxy does per connection (two sockets, a data listener each way, a FIN or close ' +
        'passed on; no streams piping, no bookkeeping): what coquin could reach at best on Node. ' +
        '"pipe proxy" is `client.pipe(upstream).pipe(client)` with no tuning; HAProxy runs in TCP mode with one thread and ' +
        'default buffers; "coquin + latency 0" has a `latency` fault with latency 0 on both streams, toxicity 1 (a stage ' +
        'on each direction, no delay).',
      has('http') && '"coquin http" is a `protocol: http` proxy (requests framed, matched and journalled) with no fault; ' +
        '"+ http_status 0" adds an http_status fault matching every GET at toxicity 0 (matched and drawn, never answered). ' +
        'HTTP keep-alive: one small GET in flight per connection, no pipelining, against a minimal keep-alive responder; ' +
        '"pipe", "HAProxy" and "coquin" there carry it as TCP.',
      has('churn') && `Churn: ${CHURN_WORKERS} concurrent loops, each connecting, sending 64 B, reading the echo and closing ` +
        '(client first); completed connections per second.',
      has('idle') && 'Per idle link: growth of the proxy process\'s RSS (HAProxy: VmRSS from /proc) ' +
        `after a full GC${gcExposed ? '' : ' (gc was NOT exposed: figures include garbage)'} with ${LINKS.toLocaleString('en-US')} ` +
        'links open at once, each with one byte echoed; the marginal row is the growth over the second half of them alone ' +
        '(what one more link costs, without what grows once: V8 sizing its young generation up under the burst of accepts); ' +
        'the JS heap row is the part in V8\'s heap (live objects after the GC).',
    ]
    lines.push(notes.filter(Boolean).join(' '))
    lines.push('')
  }

  if (ONLY.has('faults') && extra.size > 0) {
    const fast = v('bulk1', 'coquin')
    const direct = v('bulk1', 'direct')
    lines.push('Bulk download, 1 conn, through coquin with a fault on the downstream (data) stream:', '')
    lines.push('| fault | MB/s | ÷ coquin, no fault | ÷ direct |')
    lines.push('|---|--:|--:|--:|')
    const row = (label: string, x: number | undefined) => {
      if (x === undefined) return
      lines.push(`| ${label} | ${fmt(x, 'MB/s')} | ${ratio(x, fast)} | ${ratio(x, direct)} |`)
    }
    row('none (the fast path)', fast)
    row('latency 0 (both streams)', v('bulk1', 'coquin-fault'))
    for (const f of BULK_FAULTS) row(f.label, median(extra.get(f.key)))
    lines.push('')
    lines.push('Same run, same rounds; "÷ coquin, no fault" is the ratio to coquin\'s own fast path (no fault at all). ' +
      'The bandwidth rate is far above what loopback carries here, so that the fault meters every chunk but never waits; ' +
      'slicer with delay 0 splits every chunk and writes each piece separately.')
    lines.push('')
  }

  if (ONLY.has('precision') && latencyErrors.size > 0) {
    lines.push('Fault precision, latency: a `latency` fault (jitter 0) on the downstream of an echo proxy; 64 B round trips over one ' +
      'connection; error = round trip − the same round\'s p50 round trip without the fault − the requested latency:', '')
    lines.push('| requested | observed added, p50 | observed added, p99 | error p50 | error p99 | round trips |')
    lines.push('|--:|--:|--:|--:|--:|--:|')
    for (const req of LATENCIES) {
      const errs = latencyErrors.get(req)
      if (!errs || errs.length === 0) continue
      const sorted = Float64Array.from(errs).sort()
      const e50 = quantile(sorted, 0.5)
      const e99 = quantile(sorted, 0.99)
      lines.push(`| ${req} ms | ${(req + e50).toFixed(3)} ms | ${(req + e99).toFixed(3)} ms | ${fmtMs(e50)} | ${fmtMs(e99)} | ${errs.length.toLocaleString('en-US')} |`)
    }
    lines.push('')
    lines.push(`Fault precision, bandwidth: a \`bandwidth\` fault on the downstream of a bulk source (rate in KB/s, 1 KB = 1000 B); ` +
      `bytes read over ${PRECISION_MS} ms after a ${Math.max(WARMUP, 500)} ms warm-up, one connection, timed from the first ` +
      'arrival in the window to the last (the fault releases bytes in bursts, one per 10 ms tick):', '')
    lines.push('| requested | observed (median) | error | worst round |')
    lines.push('|--:|--:|--:|--:|')
    for (const rate of RATES) {
      const xs = extra.get(`bw.${rate}`)
      const obs = median(xs)
      if (!xs || obs === undefined) continue
      const worst = xs.reduce((w, x) => (Math.abs(x - rate) > Math.abs(w - rate) ? x : w), xs[0]!)
      lines.push(`| ${rate.toLocaleString('en-US')} KB/s | ${Math.round(obs).toLocaleString('en-US')} KB/s | ${pct((obs - rate) / rate)} | ${pct((worst - rate) / rate)} |`)
    }
    lines.push('')
  }

  const cpuScenarios = scenarios.filter(s => cpu.has(s.key))
  const kinds = TARGETS.filter((t): t is Kind => t !== 'direct' && cpuScenarios.some(s => cpu.get(s.key)?.has(t)))
  if (cpuScenarios.length > 0 && kinds.length > 0) {
    lines.push('Proxy process CPU during each measurement (% of one core, user + system, warm-up included):', '')
    lines.push(`| scenario | ${kinds.map(k => LABEL[k]).join(' | ')} |`)
    lines.push(`|---|${kinds.map(() => '--:').join('|')}|`)
    for (const s of cpuScenarios) {
      const c = (t: Target) => { const x = median(cpu.get(s.key)?.get(t)); return x === undefined ? '—' : `${x.toFixed(0)} %` }
      lines.push(`| ${s.label} | ${kinds.map(c).join(' | ')} |`)
    }
    lines.push('')
    const perScenarios = cpuScenarios.filter(s => cpuPerUnit.has(s.key))
    if (perScenarios.length > 0) {
      lines.push('Proxy CPU per unit of work (core time ÷ the scenario\'s rate, median of the rounds; lower is better):', '')
      lines.push(`| scenario | unit | ${kinds.map(k => LABEL[k]).join(' | ')} |`)
      lines.push(`|---|---|${kinds.map(() => '--:').join('|')}|`)
      for (const s of perScenarios) {
        const c = (t: Target) => { const x = median(cpuPerUnit.get(s.key)?.get(t)); return x === undefined ? '—' : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2) }
        lines.push(`| ${s.label} | ${PER_UNIT[s.key]!.unit} | ${kinds.map(c).join(' | ')} |`)
      }
      lines.push('')
    }
  }

  if (ROUNDS > 1) {
    lines.push('<details><summary>Per-round figures</summary>', '')
    if (metrics.length > 0) {
      const targets = TARGETS.filter(t => metrics.some(m => data.get(m.key)?.has(t)))
      lines.push(`| metric | ${targets.map(t => LABEL[t]).join(' | ')} |`)
      lines.push(`|---|${targets.map(() => '--:').join('|')}|`)
      for (const m of metrics) {
        const cell = (t: Target) => data.get(m.key)?.get(t)?.map(x => fmt(x, m.unit)).join(' / ') ?? '—'
        lines.push(`| ${m.label} (${m.unit}) | ${targets.map(cell).join(' | ')} |`)
      }
      lines.push('')
    }
    const rows: string[] = []
    for (const f of BULK_FAULTS) {
      const xs = extra.get(f.key)
      if (xs) rows.push(`| bulk, ${f.label} | ${xs.map(x => `${fmt(x, 'MB/s')} MB/s`).join(' / ')} |`)
    }
    for (const rate of RATES) {
      const xs = extra.get(`bw.${rate}`)
      if (xs) rows.push(`| bandwidth ${rate.toLocaleString('en-US')} KB/s, observed | ${xs.map(x => `${Math.round(x).toLocaleString('en-US')} KB/s`).join(' / ')} |`)
    }
    if (rows.length > 0) lines.push('| coquin with a fault | per round |', '|---|--:|', ...rows, '')
    lines.push('</details>')
  }
  return lines.join('\n').trimEnd()
}

await main()
process.exit(0)
