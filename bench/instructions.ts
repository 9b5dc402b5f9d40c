// Instructions per connection (connect, 64 B echo, close), counted by valgrind's callgrind in the proxy's
// process alone: user-space instructions (the kernel's work is not counted), of the main thread — where
// JavaScript, Node's C++ and libuv run — and of all threads (V8's GC and compiler helpers too, which swing
// with timing). Counting starts after a warm-up, so start-up and most JIT compilation are left out.
// A count is steadier than time on a shared machine and says where a proxy's per-connection cost lies:
//   bare              the Node floor (bench/pipe-proxy.ts startBareProxy): what any Node proxy spends
//   registry          coquin's data path alone (a Registry with no observer)
//   registry-journal  … with the journal only;  registry-metrics  … with the metrics only
//   coquin            coquin as `coquin serve` runs it (journal, metrics, logs)
//   before            coquin built in COQUIN_BEFORE=DIR (a before/after of a change)
// Workloads: `churn` (per connection: connect, 64 B echo, close; measured and warm-up in connections) or
// `bulk` (per MB of one download through the proxy; measured and warm-up in MB). TOP=N also lists the N
// functions of the main thread with the most instructions (Node's C++ and libc by name; JIT code is `???`).
// Needs valgrind (apt-get install valgrind). About a minute per kind.
//   npm run build && node dist/bench/instructions.js [kinds=bare,registry,coquin] [measured=1000] [warm-up=1500] [churn|bulk]
import net from 'node:net'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { startBareProxy } from './pipe-proxy.js'
import { portOf, startEcho, startSource } from './servers.js'

const KINDS = ['bare', 'registry', 'registry-journal', 'registry-metrics', 'coquin', 'before'] as const
type Kind = typeof KINDS[number]

if (process.argv[2] === '--proxy') await proxy(process.argv[3] as Kind, Number(process.argv[4]), Number(process.argv[5]))
else await main()

async function main(): Promise<void> {
  const [kindsArg = 'bare,registry,coquin', measuredArg = '1000', warmArg = '1500', workload = 'churn'] = process.argv.slice(2)
  if (workload !== 'churn' && workload !== 'bulk') throw new Error(`workload must be churn or bulk: ${workload}`)
  const unit = workload === 'churn' ? 'connection' : 'MB'
  const kinds = kindsArg.split(',') as Kind[]
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`unknown kind ${k}: ${KINDS.join(', ')}`)
  const measured = Number(measuredArg)
  const warm = Number(warmArg)
  const upstream = workload === 'churn' ? await startEcho() : await startSource()
  const perConn = new Map<Kind, number>()
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9)
  console.log(`${'kind'.padEnd(18)} ${'main thread'.padStart(11)} ${'all threads'.padStart(11)}   instructions per ${unit}`)
  try {
    for (const kind of kinds) {
      const n = await count(kind, portOf(upstream), warm, measured, workload)
      perConn.set(kind, n.main)
      const floor = perConn.get('bare')
      console.log(`${kind.padEnd(18)} ${fmt(n.main)}   ${fmt(n.all)}` +
        (floor && kind !== 'bare' ? `     main thread ${(n.main / floor).toFixed(2)}× the Node floor's` : ''))
    }
  } finally {
    upstream.close()
  }
}

/** Runs one proxy under callgrind, counting only the `measured` connections (or MB) after `warm` ones. */
async function count(kind: Kind, upstreamPort: number, warm: number, measured: number, workload: 'churn' | 'bulk'): Promise<{ all: number; main: number }> {
  const total = workload === 'churn' ? warm + measured : 1
  const dir = mkdtempSync(path.join(os.tmpdir(), 'coquin-callgrind-'))
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${dir}/out`, '--separate-threads=yes', '--smc-check=all-non-file', '--instr-atstart=no',
    process.execPath, fileURLToPath(import.meta.url), '--proxy', kind, String(total), String(upstreamPort)],
  { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = once(child, 'exit')
  try {
    // Bounded: valgrind missing (spawn's 'error'), or the proxy dying before it listens, ends the wait too.
    let timer: NodeJS.Timeout | undefined
    const line = await Promise.race([
      once(child.stdout!, 'data').then(([d]) => String(d)),
      once(child, 'error').then(([e]) => { throw new Error(`${kind}: cannot run valgrind (apt-get install valgrind): ${(e as Error).message}`) }),
      exited.then(() => { throw new Error(`${kind}: the proxy exited before listening:\n${err.slice(-1000)}`) }),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${kind}: no port from the proxy within 120 s`)), 120_000) }),
    ]).finally(() => clearTimeout(timer))
    const port = Number(line.trim())
    if (!Number.isInteger(port) || port <= 0) throw new Error(`${kind}: no port from the proxy (${line})`)
    const on = () => execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore', timeout: 30_000 })
    if (workload === 'churn') {
      await connections(port, warm)
      on()
      await connections(port, measured)
    } else {
      await download(port, warm, measured, on)
    }
    await exited
  } finally {
    child.kill('SIGKILL')
  }
  try {
    const m = /Collected : (\d+)/.exec(err)
    if (!m) throw new Error(`${kind}: callgrind gave no count:\n${err.slice(-1000)}`)
    // The main thread's own count (out-01): the JavaScript and Node's C++ that run per connection, without
    // V8's helper threads (concurrent marking, background compiles), whose share swings with timing.
    const main = /^(?:summary|totals): (\d+)/m.exec(readFileSync(path.join(dir, 'out-01'), 'utf8'))
    if (!main) throw new Error(`${kind}: no main-thread total in callgrind's output`)
    const top = Number(process.env['TOP'] ?? 0)
    if (top > 0) {
      const text = execFileSync('callgrind_annotate', [path.join(dir, 'out-01')], { encoding: 'utf8', maxBuffer: 64 << 20 })
      const rows = text.split('\n').filter(l => /^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S/.test(l) && !l.includes('PROGRAM TOTALS')).slice(0, top)
      for (const r of rows) console.log(`    ${r.trim().slice(0, 150)}`)
    }
    return { all: Number(m[1]) / measured, main: Number(main[1]) / measured }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** One download through the proxy: `warm` MB, then `on()`, then `measured` MB more, then close. */
async function download(port: number, warm: number, measured: number, on: () => void): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port })
  s.on('error', () => {})
  let got = 0
  let counting = false
  await new Promise<void>(resolve => {
    s.on('data', (c: Buffer) => {
      got += c.length
      if (!counting && got >= warm * 1e6) { counting = true; got = 0; s.pause(); on(); s.resume() }
      else if (counting && got >= measured * 1e6) { s.destroy(); resolve() }
    })
  })
}

/** `n` connections, 8 at a time: connect, 64 B, the echo, close. */
async function connections(port: number, n: number): Promise<void> {
  const msg = Buffer.alloc(64, 0x63)
  let started = 0
  const one = () => new Promise<void>(resolve => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true })
    let got = 0
    s.on('connect', () => s.write(msg))
    s.on('data', (c: Buffer) => { got += c.length; if (got >= msg.length) s.destroy() })
    s.on('error', () => {})
    s.on('close', () => resolve())
  })
  await Promise.all(Array.from({ length: 8 }, async () => { while (started < n) { started++; await one() } }))
}

/** The proxy process: prints its port, exits once `total` links have closed. */
async function proxy(kind: Kind, total: number, upstreamPort: number): Promise<void> {
  let closed = 0
  const closedOne = () => { if (++closed === total) setImmediate(() => process.exit(0)) }
  const upstream = `127.0.0.1:${upstreamPort}`
  let port: number
  if (kind === 'bare') {
    const p = await startBareProxy({ host: '127.0.0.1', port: upstreamPort })
    p.server.on('connection', (c: net.Socket) => c.on('close', closedOne))
    port = p.port
  } else {
    const src = kind === 'before' ? pathToFileURL(`${process.env['COQUIN_BEFORE'] ?? '.'}/dist/src/`) : new URL('../src/', import.meta.url)
    let registry: import('../src/control/registry.js').Registry
    if (kind === 'coquin' || kind === 'before') {
      const { startCoquin } = await import(new URL('server.js', src).href) as typeof import('../src/server.js')
      const { createLogger } = await import(new URL('core/log.js', src).href) as typeof import('../src/core/log.js')
      const nowhere = new Writable({ write(_chunk, _encoding, done) { done() } })
      registry = (await startCoquin({ port: 0, log: createLogger({ level: 'info', destination: nowhere }) })).registry
    } else {
      const { Registry } = await import('../src/control/registry.js')
      const { builtins } = await import('../behaviors/index.js')
      const { Journal } = await import('../src/observe/journal.js')
      const { createMetrics } = await import('../src/observe/metrics.js')
      const observer = kind === 'registry-journal' ? new Journal() : kind === 'registry-metrics' ? createMetrics({ coquin: () => [] }).observer : undefined
      registry = new Registry({ behaviors: builtins, ...(observer ? { observer } : {}) })
    }
    const p = await registry.create({ name: 'echo', listen: '127.0.0.1:0', upstream })
    const linkClosed = p.linkClosed.bind(p)
    p.linkClosed = link => { linkClosed(link); closedOne() }
    port = p.port
  }
  process.stdout.write(`${port}\n`)
}
