// HTTP mode micro-benchmark: keep-alive small GETs through a tcp proxy, an http proxy, and an http
// proxy with an http_status fault at toxicity 0 matching GET. The upstream and the clients run in a
// child process, so this process (its CPU time and its --cpu-prof profile) is the proxy alone, run as
// `coquin serve` runs it (journal, metrics and logs on).
//   npx tsc -p tsconfig.json && node --cpu-prof dist/bench/http-profile.js [modes=tcp,http,http0] [rounds=2] [ms=3000] [conns=50]
import net from 'node:net'
import { fork, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'

const REQ = Buffer.from('GET /api/items?id=42&x=y HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n', 'latin1')
const RES = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok', 'latin1')
const TERM = Buffer.from('\r\n\r\n')

type Msg = { kind: 'load'; port: number; conns: number; ms: number }

if (process.argv[2] !== '--child') await main()
else worker()

async function main(): Promise<void> {
  const [modesArg = 'tcp,http,http0', roundsArg = '2', msArg = '3000', connsArg = '50'] = process.argv.slice(2)
  const modes = modesArg.split(',')
  // coquin as `coquin serve` runs it: the control API, metrics, the journal and logs (at info, written nowhere).
  // COQUIN_SRC=DIR: the coquin built in another checkout (DIR/dist/src), for a before/after of a change.
  const src = process.env['COQUIN_SRC'] ? pathToFileURL(`${process.env['COQUIN_SRC']}/dist/src/`) : new URL('../src/', import.meta.url)
  const { startCoquin } = await import(new URL('server.js', src).href) as typeof import('../src/server.js')
  const { createLogger } = await import(new URL('core/log.js', src).href) as typeof import('../src/core/log.js')
  const { Writable } = await import('node:stream')
  const w: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], { execArgv: [] })
  const upstreamPort = await new Promise<number>(r => w.once('message', (m: { port: number }) => r(m.port)))
  const nowhere = new Writable({ write(_chunk, _encoding, done) { done() } })
  const server = await startCoquin({ port: 0, log: createLogger({ level: 'info', destination: nowhere }), ...(process.env['JOURNAL_SIZE'] ? { journalSize: Number(process.env['JOURNAL_SIZE']) } : {}) })
  const registry = server.registry
  const upstream = `127.0.0.1:${upstreamPort}`
  const specs: Record<string, object> = {
    tcp: { protocol: 'tcp' },
    http: { protocol: 'http' },
    http0: { protocol: 'http', toxics: [{ name: 's', type: 'http_status', toxicity: 0, attributes: { match: { method: 'GET' }, status: 503 } }] },
  }
  const ports: Record<string, number> = {}
  for (const m of modes) {
    const p = await registry.create({ name: m, listen: '127.0.0.1:0', upstream, ...specs[m] })
    ports[m] = p.port
  }
  const results: Record<string, number[]> = {}
  const busy: Record<string, number[]> = {}
  for (let r = 0; r < Number(roundsArg); r++) {
    for (const m of modes) {
      w.send({ kind: 'load', port: ports[m]!, conns: Number(connsArg), ms: Number(msArg) } satisfies Msg)
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      const rps = await new Promise<number>(res => w.once('message', (x: { rps: number }) => res(x.rps)))
      // CPU time of the proxy's process per request (warm-up included in both): less noisy than req/s on a shared machine
      const cpu = process.cpuUsage(cpu0)
      const usPerReq = (cpu.user + cpu.system) / (rps * (performance.now() - t0 - 200) / 1000)
      const elu = { utilization: (cpu.user + cpu.system) / 1000 / (performance.now() - t0) }
      ;(results[m] ??= []).push(rps)
      ;(busy[m] ??= []).push(usPerReq)
      console.log(`round ${r} ${m}: ${Math.round(rps)} req/s, proxy cpu ${usPerReq.toFixed(1)} us/req (user ${(usPerReq * cpu.user / (cpu.user + cpu.system)).toFixed(1)}, cpu ${elu.utilization.toFixed(2)})`)
    }
  }
  const avg = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length
  if (results.tcp) for (const m of modes) if (m !== 'tcp') console.log(`${m}/tcp = ${(avg(results[m]!) / avg(results.tcp)).toFixed(2)} req/s; busy us/req ${m} ${avg(busy[m]!).toFixed(1)} vs tcp ${avg(busy.tcp!).toFixed(1)}`)
  await server.close()
  w.kill()
}

function worker(): void {
  const server = net.createServer({ noDelay: true }, s => {
    let tail = Buffer.alloc(0)
    s.on('data', (c: Buffer) => {
      const b = tail.length ? Buffer.concat([tail, c]) : c
      let n = 0, i = 0
      for (;;) { const k = b.indexOf(TERM, i); if (k < 0) break; n++; i = k + 4 }
      tail = i < b.length ? Buffer.from(b.subarray(i)) : Buffer.alloc(0)
      if (n === 1) s.write(RES)
      else if (n > 1) s.write(Buffer.concat(Array(n).fill(RES)))
    })
    s.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }))
  process.on('message', (m: Msg) => { void load(m).then(rps => process.send!({ rps })) })
}

async function load({ port, conns, ms }: Msg): Promise<number> {
  let count = 0
  let counting = false
  const socks: net.Socket[] = []
  for (let i = 0; i < conns; i++) {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true })
    s.on('error', () => {})
    let got = 0
    s.on('data', (c: Buffer) => {
      got += c.length
      while (got >= RES.length) { got -= RES.length; if (counting) count++; s.write(REQ) }
    })
    s.once('connect', () => s.write(REQ))
    socks.push(s)
  }
  await new Promise(r => setTimeout(r, 500))                  // warm-up
  counting = true
  const t0 = performance.now()
  await new Promise(r => setTimeout(r, ms))
  const rps = count / ((performance.now() - t0) / 1000)
  counting = false
  for (const s of socks) s.destroy()
  await new Promise(r => setTimeout(r, 200))
  return rps
}
