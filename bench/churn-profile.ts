// Connection churn micro-benchmark: connect, 64 B echo, close, in `loops` parallel loops, through coquin's
// TCP mode (no fault), a plain pipe proxy, and `bare`: the least a Node proxy can do per connection (Node's
// floor, bench/pipe-proxy.ts). The echo server and the clients run in a child
// process, so this process (its CPU time and its --cpu-prof profile) is the proxy alone, coquin run as
// `coquin serve` runs it (journal, metrics and logs on). Prints proxy CPU µs per connection beside the rate.
//   npm run build && node --cpu-prof dist/bench/churn-profile.js [modes=tcp,pipe,bare] [rounds=3] [ms=3000] [loops=32]
//   PIN=1 pins this process to the last core and the clients to the others (steadier on a shared machine).
//   COQUIN_BEFORE=DIR adds mode `before`: the coquin built in DIR/dist/src, in this same process, for an
//   interleaved before/after of a change (modes=tcp,before).
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { availableParallelism } from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { pin } from './ipc.js'
import { churn } from './load.js'
import { portOf, startEcho } from './servers.js'
import { startBareProxy, startPipeProxy } from './pipe-proxy.js'

type Msg = { kind: 'load'; port: number; loops: number; ms: number }

if (process.argv[2] !== '--child') await main()
else await worker()

async function main(): Promise<void> {
  const [modesArg = 'tcp,pipe', roundsArg = '3', msArg = '3000', loopsArg = '32'] = process.argv.slice(2)
  const modes = modesArg.split(',')
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], { execArgv: [] })
  if (process.env['PIN']) {
    const last = availableParallelism() - 1
    if (!pin(process.pid, String(last)) || !pin(child.pid!, last > 1 ? `0-${last - 1}` : '0')) console.error('warning: taskset failed; not pinned')
  }
  try {
    const [{ port: echo }] = await once(child, 'message') as [{ port: number }]
    const servers: { close(): Promise<void> }[] = []
    /** A coquin from src (a dist/src URL) as `coquin serve` runs it, with one TCP proxy to the echo server. */
    const coquin = async (src: URL): Promise<number> => {
      const { startCoquin } = await import(new URL('server.js', src).href) as typeof import('../src/server.js')
      const { createLogger } = await import(new URL('core/log.js', src).href) as typeof import('../src/core/log.js')
      const nowhere = new Writable({ write(_chunk, _encoding, done) { done() } })
      const server = await startCoquin({ port: 0, log: createLogger({ level: 'info', destination: nowhere }) })
      servers.push(server)
      return (await server.registry.create({ name: 'tcp', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo}` })).port
    }
    const pipe = await startPipeProxy({ host: '127.0.0.1', port: echo })
    const bare = await startBareProxy({ host: '127.0.0.1', port: echo })
    const ports: Record<string, number> = { pipe: pipe.port, bare: bare.port }
    if (modes.includes('tcp')) ports['tcp'] = await coquin(new URL('../src/', import.meta.url))
    const before = process.env['COQUIN_BEFORE']
    if (modes.includes('before') && before) ports['before'] = await coquin(pathToFileURL(`${before}/dist/src/`))
    const cpuPer: Record<string, number[]> = {}
    const rates: Record<string, number[]> = {}
    for (let r = 0; r < Number(roundsArg); r++) {
      for (const m of modes.map((_, i) => modes[(i + r) % modes.length]!)) {   // order rotated per round
        const port = ports[m]
        if (port === undefined) throw new Error(`unknown mode ${m} (tcp, pipe, bare; before with COQUIN_BEFORE)`)
        child.send({ kind: 'load', port, loops: Number(loopsArg), ms: Number(msArg) } satisfies Msg)
        const cpu0 = process.cpuUsage()
        const [{ rate, total }] = await once(child, 'message') as [{ rate: number; total: number }]
        const cpu = process.cpuUsage(cpu0)
        const us = (cpu.user + cpu.system) / total
        ;(cpuPer[m] ??= []).push(us)
        ;(rates[m] ??= []).push(rate)
        console.log(`round ${r} ${m}: ${Math.round(rate)} conn/s, proxy cpu ${us.toFixed(1)} µs/conn (user ${(cpu.user / total).toFixed(1)}, system ${(cpu.system / total).toFixed(1)})`)
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
    for (const m of modes) console.log(`${m}: median ${Math.round(median(rates[m]!))} conn/s, ${median(cpuPer[m]!).toFixed(1)} µs/conn`)
    pipe.server.close()
    bare.server.close()
    for (const server of servers) await server.close()
  } finally {
    child.kill()
  }
}

async function worker(): Promise<void> {
  const echo = await startEcho()
  process.send!({ port: portOf(echo) })
  process.on('message', (m: Msg) => {
    // every connection of the run (warm-up included) against the CPU time of the whole run
    void churn(m.port, m.loops, 300, m.ms).then(res => {
      process.send!({ rate: res.rate, total: res.total })
    })
  })
  process.on('disconnect', () => process.exit(0))
}
