// The protocol layers' cost, measured with the servers' own tools: redis-benchmark and pgbench, each run
// direct, through coquin's TCP fast path and through coquin's protocol layer (`protocol: redis` /
// `postgres`, no fault), targets rotated in every round; medians, per-round ratios, and coquin's CPU per
// request (read from the worker's process.cpuUsage). Servers are Debian's redis-server and PostgreSQL,
// started here on free loopback ports.
//
//   npm run bench:protocols                       3 rounds
//   npm run bench:protocols -- --rounds 5 --seconds 5
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Child, killChildren } from './ipc.js'
import { findExecutable, pgBinDirs, postgresServer, redisServer } from '../test/helpers/servers.js'

const run = promisify(execFile)
const { values: argv } = parseArgs({ options: { rounds: { type: 'string' }, seconds: { type: 'string' } } })
const ROUNDS = Number(argv.rounds ?? 3)
const SECONDS = Number(argv.seconds ?? 3)

const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }
process.on('exit', killChildren)

type Target = 'direct' | 'tcp' | 'protocol'
const TARGETS: readonly Target[] = ['direct', 'tcp', 'protocol']
const LABEL: Record<Target, string> = { direct: 'direct', tcp: 'coquin tcp', protocol: 'coquin protocol layer' }

interface Case {
  name: string
  /** Runs the tool against a port; resolves with operations per second. */
  run(port: number): Promise<number>
  /** Operations counted per run, for CPU per operation. */
  unit: string
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

async function main(): Promise<void> {
  const redisBench = findExecutable('redis-benchmark')
  const pgbench = findExecutable('pgbench', pgBinDirs())
  if (!redisBench || !pgbench) throw new Error('needs redis-benchmark (redis-tools) and pgbench (postgresql-contrib or postgresql)')
  const redis = await redisServer(t)
  const pg = await postgresServer(t)
  const env = { ...process.env, PGUSER: 'postgres', PGHOST: '127.0.0.1', PGDATABASE: 'postgres' }
  await run(pgbench, ['-i', '-s', '1', '-q', '-p', String(pg.port)], { env, timeout: 120_000 })

  const worker = new Child('coquin', new URL('./protocol-worker.js', import.meta.url))
  teardowns.push(() => worker.stop())
  const ports = await worker.request<Record<string, number>>('start', { upstreams: { redis: redis.port, postgres: pg.port } })
  const portOf = (server: 'redis' | 'postgres', target: Target) =>
    target === 'direct' ? (server === 'redis' ? redis.port : pg.port) : ports[target === 'tcp' ? `${server}-tcp` : server]!

  const requests = 20_000 * SECONDS
  const redisCase = (name: string, extra: string[]): Case & { server: 'redis' } => ({
    name, server: 'redis', unit: 'request',
    async run(port) {
      const { stdout } = await run(redisBench, ['-h', '127.0.0.1', '-p', String(port), '-n', String(requests), '-c', '50', '-t', 'set,get', '--csv', ...extra], { timeout: 300_000 })
      const rps = [...stdout.matchAll(/^"(SET|GET)","([\d.]+)"/gm)].map(m => Number(m[2]))
      if (rps.length !== 2) throw new Error(`redis-benchmark said: ${stdout}`)
      return rps.reduce((a, b) => a + b) / 2
    },
  })
  const pgCase = (name: string, extra: string[]): Case & { server: 'postgres' } => ({
    name, server: 'postgres', unit: 'transaction',
    async run(port) {
      const { stdout } = await run(pgbench, ['-p', String(port), '-c', '8', '-j', '2', '-T', String(SECONDS), '-S', '-n', ...extra], { env, timeout: 300_000 })
      const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)
      if (!m) throw new Error(`pgbench said: ${stdout}`)
      return Number(m[1])
    },
  })
  const cases = [
    redisCase('redis-benchmark SET/GET, 50 clients', []),
    redisCase('redis-benchmark SET/GET, 50 clients, pipeline 16', ['-P', '16']),
    pgCase('pgbench -S (select only), 8 clients, simple protocol', ['-M', 'simple']),
    pgCase('pgbench -S (select only), 8 clients, prepared statements', ['-M', 'prepared']),
  ]
  const results = new Map<string, Map<Target, { ops: number[]; cpu: number[] }>>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!)
      for (const target of order) {
        const cpu0 = await worker.request<number>('cpu')
        const t0 = performance.now()
        const ops = await c.run(portOf(c.server, target))
        const seconds = (performance.now() - t0) / 1000
        const cpu = await worker.request<number>('cpu') - cpu0
        const byTarget = results.get(c.name) ?? new Map()
        results.set(c.name, byTarget)
        const r = byTarget.get(target) ?? { ops: [], cpu: [] }
        byTarget.set(target, r)
        r.ops.push(ops)
        r.cpu.push(target === 'direct' ? 0 : cpu / (ops * seconds) * 1e6)
        process.stderr.write(`round ${round + 1} ${c.name} ${LABEL[target]}: ${ops.toFixed(0)}/s\n`)
      }
    }
  }
  const lines = [
    `Protocol layers, ${new Date().toISOString().slice(0, 10)}: \`npm run bench:protocols -- --rounds ${ROUNDS} --seconds ${SECONDS}\` (${ROUNDS} rounds, targets rotated; medians; coquin CPU in µs per operation, approximate: it divides by the run's wall time)`,
    '',
    '| workload | direct /s | coquin tcp /s | protocol layer /s | layer ÷ tcp (per round) | layer ÷ direct | CPU µs/op tcp | CPU µs/op layer |',
    '|---|--:|--:|--:|--|--:|--:|--:|',
  ]
  for (const c of cases) {
    const r = results.get(c.name)!
    const d = r.get('direct')!, tc = r.get('tcp')!, p = r.get('protocol')!
    const perRound = p.ops.map((v, i) => (v / tc.ops[i]!).toFixed(2)).join(', ')
    lines.push(`| ${c.name} | ${median(d.ops).toFixed(0)} | ${median(tc.ops).toFixed(0)} | ${median(p.ops).toFixed(0)} | ${(median(p.ops) / median(tc.ops)).toFixed(2)} (${perRound}) | ${(median(p.ops) / median(d.ops)).toFixed(2)} | ${median(tc.cpu).toFixed(1)} | ${median(p.cpu).toFixed(1)} |`)
  }
  const table = lines.join('\n') + '\n'
  process.stdout.write(`\n${table}`)
  writeFileSync(new URL('../../bench/results-protocols.md', import.meta.url), `# Protocol layers: measured results\n\n${table}`)
}

try {
  await main()
} finally {
  for (const fn of teardowns.reverse()) await fn()
  killChildren()
}
