// Worker process driving one HAProxy peer: TCP mode, one thread, long timeouts, no logging, on
// 127.0.0.1 in front of every upstream server, from a config generated in a temp folder. It answers the
// same requests as proxy-worker.ts (start, stats, connections, cpu) plus pid, from HAProxy's stats
// socket and /proc. HAProxy is killed when this worker exits for any reason (the parent also kills it
// by pid: see trackPid in ipc.ts). The config's temp folder is removed as soon as HAProxy has read it,
// and the stats socket is in Linux's abstract namespace, so that no file outlives a killed run.
//   node haproxy-worker.js /usr/sbin/haproxy MAXCONN
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { serve } from './ipc.js'

const [bin, maxconnArg] = process.argv.slice(2)
const maxconn = Number(maxconnArg)
if (!bin || !Number.isInteger(maxconn) || maxconn < 1) {
  console.error('usage: haproxy-worker.js HAPROXY_PATH MAXCONN')
  process.exit(2)
}

let dir: string | undefined
/** Abstract unix socket: HAProxy's `abns@NAME` is Node's '\0NAME'. */
const statsName = `coquin-bench-haproxy-${process.pid}-${Date.now()}`
const statsPath = `\0${statsName}`
let proc: ChildProcess | undefined
let exited: string | undefined
let stderr = ''

function cleanup(): void {
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    try { proc.kill('SIGKILL') } catch { /* already gone */ }
  }
  if (dir) rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(1))

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100 } catch { return 100 }
})()

/** Free loopback ports, all held open at once so that they differ, then released for HAProxy to bind. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => resolve(s))
  })))
  const ports = servers.map(s => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map(s => new Promise(r => s.close(r))))
  return ports
}

/** One command on HAProxy's stats socket; the answer in full. */
function statsCommand(cmd: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(statsPath)
    let out = ''
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`haproxy stats socket: ${cmd} timed out`)) }, timeoutMs)
    s.setEncoding('utf8')
    s.on('connect', () => s.write(`${cmd}\n`))
    s.on('data', (c: string) => { out += c })
    s.on('error', err => { clearTimeout(timer); reject(err) })
    s.on('close', () => { clearTimeout(timer); resolve(out) })
  })
}

async function info(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const line of (await statsCommand('show info')).split('\n')) {
    const i = line.indexOf(':')
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim()
  }
  return out
}

function alive(): number {
  if (!proc || proc.pid === undefined) throw new Error('haproxy is not started')
  if (exited !== undefined) throw new Error(`haproxy exited (${exited})${stderr ? `: ${stderr.trim()}` : ''}`)
  return proc.pid
}

async function start(upstreams: Record<string, number>): Promise<Record<string, number>> {
  if (proc) throw new Error('haproxy is already started')
  const names = Object.keys(upstreams)
  const listen = await freePorts(names.length)
  const ports: Record<string, number> = {}
  const lines = [
    'global',
    '  nbthread 1',
    `  maxconn ${maxconn}`,
    `  stats socket abns@${statsName} level user`,
    '  # no log line: nothing is logged',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
    `  maxconn ${maxconn}`,
  ]
  for (const [i, name] of names.entries()) {
    ports[name] = listen[i]!
    lines.push(`listen ${name}`, `  bind 127.0.0.1:${listen[i]!}`, `  server ${name} 127.0.0.1:${upstreams[name]!}`)
  }
  dir = mkdtempSync(path.join(os.tmpdir(), 'coquin-bench-haproxy-'))
  const cfg = path.join(dir, 'haproxy.cfg')
  writeFileSync(cfg, lines.join('\n') + '\n')

  const p = spawn(bin!, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] })
  proc = p
  p.stderr!.setEncoding('utf8')
  p.stderr!.on('data', (c: string) => {
    stderr = (stderr + c).slice(-4_000)
    // Startup notices are noise; warnings and alerts are worth seeing.
    for (const line of c.split('\n')) if (/WARNING|ALERT/.test(line)) process.stderr.write(`  haproxy: ${line.trim()}\n`)
  })
  p.on('exit', (code, signal) => { exited = String(signal ?? code) })
  p.on('error', err => { exited = err.message })

  // Ready when the stats socket answers: HAProxy binds every listener before it serves it.
  const until = Date.now() + 10_000
  for (;;) {
    alive()
    try {
      await info()
      break
    } catch (err) {
      if (Date.now() > until) throw new Error(`haproxy did not come up within 10 s: ${err instanceof Error ? err.message : String(err)}`)
      await sleep(50)
    }
  }
  rmSync(dir, { recursive: true, force: true }) // HAProxy has read its config: nothing left on disk
  dir = undefined
  return ports
}

/** RSS in bytes, from /proc/PID/status (VmRSS is in kB). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error('no VmRSS in /proc/PID/status')
  return Number(m[1]) * 1024
}

/** User + system CPU time in µs, from /proc/PID/stat (fields 14 and 15, in clock ticks). */
function cpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * 1e6 / CLK_TCK
}

const connections = async () => { alive(); return Number((await info())['CurrConns'] ?? NaN) }

serve({
  start: args => start(args['upstreams'] as Record<string, number>),
  pid: () => alive(),
  stats: async () => ({ rss: rss(alive()), heapUsed: undefined, connections: await connections(), gc: true }),
  connections,
  cpu: () => cpu(alive()),
})
