// The coquin benchmark: direct vs the plain pipe proxy vs coquin (no fault, and a latency 0 fault on
// both streams), on 127.0.0.1; for HTTP keep-alive requests also coquin with `protocol: http` (no fault,
// and an http_status fault that matches every request at toxicity 0). Each proxy runs alone in its own process; the upstream servers run in
// another; load is generated here. Targets alternate within every measurement, over several rounds,
// and the medians are printed as a markdown table and written to bench/results.md.
//
//   npm run bench                 3 rounds of ~2 s measurements
//   npm run bench -- --quick      1 short round (a smoke test; figures not for publishing)
//   npm run bench -- --rounds 5 --duration 3000 --links 2000 --pin
import os from 'node:os'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Child, killChildren, pin } from './ipc.js'
import { bulkDown, bulkUp, destroyAll, httpKeepAlive, openIdle, pingPong } from './load.js'
import type { Servers } from './servers.js'
import type { ProxyKind } from './proxy-worker.js'

type Target = 'direct' | ProxyKind
const TARGETS: readonly Target[] = ['direct', 'pipe', 'coquin', 'coquin-fault', 'coquin-http', 'coquin-http-status']
/** Targets that carry any TCP stream (the HTTP-mode proxies carry HTTP only). */
const TCP_TARGETS: readonly Target[] = ['direct', 'pipe', 'coquin', 'coquin-fault']
const PROXIES: readonly ProxyKind[] = ['pipe', 'coquin', 'coquin-fault', 'coquin-http', 'coquin-http-status']
const TCP_PROXIES: readonly ProxyKind[] = ['pipe', 'coquin', 'coquin-fault']
const LABEL: Record<Target, string> = {
  direct: 'direct', pipe: 'pipe proxy', coquin: 'coquin', 'coquin-fault': 'coquin + latency 0',
  'coquin-http': 'coquin http', 'coquin-http-status': 'coquin http + http_status 0',
}
/** Short names for the ratio columns. */
const SHORT: Record<Target, string> = {
  direct: 'direct', pipe: 'pipe', coquin: 'coquin', 'coquin-fault': 'coquin + lat. 0',
  'coquin-http': 'coquin http', 'coquin-http-status': 'http + status 0',
}

const USAGE = `usage: npm run bench -- [--rounds N] [--quick] [--duration MS] [--links N] [--pin]
  --rounds N      rounds, targets alternating in each (default 3; --quick: 1)
  --quick         one short round: a check that everything runs, not figures to publish
  --duration MS   measuring window of each throughput/latency run, after a warm-up (default 2000; --quick: 1000)
  --links N       idle links opened for the memory figure (default 2000)
  --pin           pin each proxy process to the last core, everything else to the others (taskset)`

const { values: argv } = parseArgs({
  options: {
    rounds: { type: 'string' }, quick: { type: 'boolean', default: false }, duration: { type: 'string' },
    links: { type: 'string' }, pin: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  },
})
if (argv.help) { console.log(USAGE); process.exit(0) }

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) { console.error(`--${name} must be a positive integer\n${USAGE}`); process.exit(2) }
  return n
}
const quick = argv.quick ?? false
const ROUNDS = positiveInt('rounds', argv.rounds, quick ? 1 : 3)
const DURATION = positiveInt('duration', argv.duration, quick ? 1000 : 2000)
const WARMUP = quick ? 200 : 300
const LINKS = positiveInt('links', argv.links, 2000)
const CORES = os.cpus().length
const PIN = (argv.pin ?? false) && CORES >= 2
const PROXY_CPU = String(CORES - 1)
const OTHER_CPUS = CORES > 2 ? `0-${CORES - 2}` : '0'

// Children die with us on every path: normal end, error, signal, watchdog.
process.on('exit', killChildren)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => { killChildren(); process.exit(128 + (os.constants.signals[sig] ?? 1)) })
}
process.on('uncaughtException', err => { console.error(err); killChildren(); process.exit(1) })
process.on('unhandledRejection', err => { console.error(err); killChildren(); process.exit(1) })

// Metrics --------------------------------------------------------------------------------------------

type Unit = 'MB/s' | 'µs' | 'round trips/s' | 'requests/s' | 'KiB'
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
  { key: 'http50.rate', label: 'HTTP keep-alive GET, 50 conns', unit: 'requests/s', direct: true },
  { key: 'mem.rss', label: 'RSS per idle link', unit: 'KiB', direct: false },
  { key: 'mem.heap', label: 'JS heap per idle link', unit: 'KiB', direct: false },
]

interface Scenario { key: string; label: string; targets: readonly Target[]; run(ports: Servers): Promise<Record<string, number>> }

const data = new Map<string, Map<Target, number[]>>()
const cpu = new Map<string, Map<Target, number[]>>()
function record(into: Map<string, Map<Target, number[]>>, key: string, target: Target, v: number): void {
  let byTarget = into.get(key)
  if (!byTarget) into.set(key, byTarget = new Map())
  let xs = byTarget.get(target)
  if (!xs) byTarget.set(target, xs = [])
  xs.push(v)
}

const progress = (msg: string) => process.stderr.write(`${msg}\n`)
const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!)

interface Stats { rss: number; heapUsed: number; connections: number; gc: boolean }

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

/** RSS and heap growth of a proxy process per idle link (client + upstream socket), after a full GC. */
async function measureMemory(w: Child, echoPort: number): Promise<{ rss: number; heap: number }> {
  destroyAll(await openIdle(echoPort, 20)) // warm the accept and connect paths first
  await settle(w)
  const before = await w.request<Stats>('stats')
  gcExposed &&= before.gc
  const socks = await openIdle(echoPort, LINKS)
  try {
    await sleep(100)
    const after = await w.request<Stats>('stats', {}, 30_000)
    if (after.connections !== LINKS) progress(`  warning: ${w.name} holds ${after.connections} links, expected ${LINKS}`)
    return { rss: (after.rss - before.rss) / LINKS / 1024, heap: (after.heapUsed - before.heapUsed) / LINKS / 1024 }
  } finally {
    destroyAll(socks)
    await settle(w)
  }
}

// The run ----------------------------------------------------------------------------------------------

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

  const scenarios: Scenario[] = [
    { key: 'bulk1', label: 'bulk download, 1 conn', targets: TCP_TARGETS, run: async p => ({ bulk1: await bulkDown(p.source, 1, WARMUP, DURATION) }) },
    { key: 'bulk8', label: 'bulk download, 8 conns', targets: TCP_TARGETS, run: async p => ({ bulk8: await bulkDown(p.source, 8, WARMUP, DURATION) }) },
    { key: 'up1', label: 'bulk upload, 1 conn', targets: TCP_TARGETS, run: async p => ({ up1: await bulkUp(p.sink, 1, WARMUP, DURATION, sunk) }) },
    {
      key: 'rtt1', label: '64 B echo, 1 conn', targets: TCP_TARGETS, run: async p => {
        const r = await pingPong(p.echo, 1, WARMUP, DURATION)
        return { 'rtt1.p50': r.p50, 'rtt1.p99': r.p99 }
      },
    },
    {
      key: 'rtt50', label: '64 B echo, 50 conns', targets: TCP_TARGETS, run: async p => {
        const r = await pingPong(p.echo, 50, WARMUP, DURATION)
        return { 'rtt50.p50': r.p50, 'rtt50.p99': r.p99, 'rtt50.rate': r.rate }
      },
    },
    {
      key: 'http50', label: 'HTTP keep-alive, 50 conns', targets: TARGETS,
      run: async p => ({ 'http50.rate': await httpKeepAlive(p.http, 50, WARMUP, DURATION) }),
    },
  ]

  // Every run is bounded on its own; this catches anything that is not.
  const budgetMs = 30_000 + ROUNDS * (15_000 + PROXIES.length * 60_000 + scenarios.length * TARGETS.length * (WARMUP + DURATION + 12_000))
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${Math.round(budgetMs / 1000)} s; giving up`)
    killChildren()
    process.exit(3)
  }, budgetMs)

  for (let r = 0; r < ROUNDS; r++) {
    progress(`round ${r + 1}/${ROUNDS}`)
    const workers = new Map<ProxyKind, Child>()
    const portsOf = new Map<Target, Servers>([['direct', ports]])
    try {
      for (const k of PROXIES) {
        const w = new Child(k, new URL('./proxy-worker.js', import.meta.url), [k])
        workers.set(k, w)
        if (PIN && !pin(w.pid, PROXY_CPU)) progress(`warning: taskset failed for ${k}`)
        portsOf.set(k, await w.request<Servers>('start', { upstreams: ports }))
      }
      // Memory first, while the proxy processes are fresh.
      for (const k of rotate(TCP_PROXIES, r)) {
        const m = await measureMemory(workers.get(k)!, portsOf.get(k)!.echo)
        record(data, 'mem.rss', k, m.rss)
        record(data, 'mem.heap', k, m.heap)
        progress(`  ${'idle links'.padEnd(24)} ${LABEL[k].padEnd(20)} ${m.rss.toFixed(1)} KiB RSS/link`)
      }
      for (const [i, s] of scenarios.entries()) {
        for (const t of rotate(s.targets, r + i)) {
          const w = t === 'direct' ? undefined : workers.get(t)
          const c0 = await w?.request<number>('cpu')
          const start = performance.now()
          const values = await s.run(portsOf.get(t)!)
          const wall = performance.now() - start
          const c1 = await w?.request<number>('cpu')
          for (const [k, v] of Object.entries(values)) record(data, k, t, v)
          if (c0 !== undefined && c1 !== undefined) record(cpu, s.key, t, (c1 - c0) / 1000 / wall * 100)
          const shown = Object.entries(values).map(([k, v]) => `${k} ${fmt(v, unitOf(k))}`).join(', ')
          progress(`  ${s.label.padEnd(24)} ${LABEL[t].padEnd(20)} ${shown}`)
          await settle(w)
        }
      }
    } finally {
      await Promise.all([...workers.values()].map(w => w.stop()))
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
    case 'MB/s': return v >= 100 ? v.toFixed(0) : v.toFixed(1)
    case 'µs': return v.toFixed(0)
    case 'round trips/s':
    case 'requests/s': return Math.round(v).toLocaleString('en-US')
    case 'KiB': return v.toFixed(1)
  }
}

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
  lines.push(`- date: ${startedAt.toISOString()}`)
  lines.push(`- Node ${process.version}, ${os.type()} ${os.release()} ${os.arch()}`)
  lines.push(`- machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`)
  lines.push(`- run: ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}${quick ? ' (--quick)' : ''}, ${WARMUP} ms warm-up + ${DURATION} ms per measurement, ` +
    `${LINKS} idle links, ${PIN ? `proxy pinned to CPU ${PROXY_CPU}, the rest to CPU ${OTHER_CPUS}` : 'not pinned'}, ${seconds.toFixed(0)} s in all`)
  lines.push(`- load average (1/5/15 min): ${la(loadStart)} at start, ${la(loadEnd)} at end`)
  // Taken before the bench started, the 1-minute average shows other work (the bench itself drives it to 2-3).
  if ((loadStart[0] ?? 0) > 1) {
    lines.push('- **the machine was busy with other work during this run: these figures are noisy**')
  }
  lines.push('')

  const v = (key: string, t: Target) => median(data.get(key)?.get(t))
  const proxied = TARGETS.filter(t => t !== 'direct')
  lines.push(`| metric | ${TARGETS.map(t => LABEL[t]).join(' | ')} | ${proxied.map(t => `${SHORT[t]} ÷ direct`).join(' | ')} | coquin ÷ pipe |`)
  lines.push(`|---|${[...TARGETS, ...proxied, 'pipe'].map(() => '--:').join('|')}|`)
  for (const m of METRICS) {
    const d = m.direct ? v(m.key, 'direct') : undefined
    const cell = (t: Target) => {
      const x = v(m.key, t)
      if (x === undefined) return '—'
      const added = m.unit === 'µs' && t !== 'direct' && d !== undefined ? ` (${x >= d ? '+' : '−'}${fmt(Math.abs(x - d), m.unit)})` : ''
      return fmt(x, m.unit) + added
    }
    const toDirect = (t: Target) => (m.direct ? ratio(v(m.key, t), d) : '—')
    const toDirectCell = (t: Target) => (v(m.key, t) === undefined ? '—' : toDirect(t))
    lines.push(`| ${m.label} (${m.unit}) | ${TARGETS.map(cell).join(' | ')} | ${proxied.map(toDirectCell).join(' | ')} | ` +
      `${ratio(v(m.key, 'coquin'), v(m.key, 'pipe'))} |`)
  }
  lines.push('')
  lines.push(`Medians of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, targets alternating within each. Ratios are figure ÷ figure: ` +
    'for MB/s and round trips/s higher is better, for µs and KiB lower is better; (+N) is the latency added over direct. ' +
    '"pipe proxy" is `client.pipe(upstream).pipe(client)` with no tuning; "coquin + latency 0" has a `latency` fault with ' +
    'latency 0 on both streams, toxicity 1 (a stage on each direction, no delay). "coquin http" is a `protocol: http` ' +
    'proxy (requests framed, matched and journalled) with no fault; "+ http_status 0" adds an http_status fault matching ' +
    'every GET at toxicity 0 (matched and drawn, never answered). HTTP keep-alive: one small GET in flight per connection, ' +
    'no pipelining, against a minimal keep-alive responder; "coquin" and "pipe" there carry it as TCP. Per idle link: growth of the proxy process ' +
    `after a full GC${gcExposed ? '' : ' (gc was NOT exposed: figures include garbage)'} with ${LINKS} links open, each with one byte echoed.`)
  lines.push('')

  lines.push('Proxy process CPU during each measurement (% of one core, user + system, warm-up included):', '')
  lines.push(`| scenario | ${PROXIES.map(k => LABEL[k]).join(' | ')} |`)
  lines.push(`|---|${PROXIES.map(() => '--:').join('|')}|`)
  for (const s of scenarios) {
    const c = (t: Target) => { const x = median(cpu.get(s.key)?.get(t)); return x === undefined ? '—' : `${x.toFixed(0)} %` }
    lines.push(`| ${s.label} | ${PROXIES.map(c).join(' | ')} |`)
  }

  if (ROUNDS > 1) {
    lines.push('', '<details><summary>Per-round figures</summary>', '')
    lines.push(`| metric | ${TARGETS.map(t => LABEL[t]).join(' | ')} |`)
    lines.push(`|---|${TARGETS.map(() => '--:').join('|')}|`)
    for (const m of METRICS) {
      const cell = (t: Target) => data.get(m.key)?.get(t)?.map(x => fmt(x, m.unit)).join(' / ') ?? '—'
      lines.push(`| ${m.label} (${m.unit}) | ${TARGETS.map(cell).join(' | ')} |`)
    }
    lines.push('', '</details>')
  }
  return lines.join('\n')
}

await main()
process.exit(0)
