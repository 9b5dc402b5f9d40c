// Worker process running one proxy under test, alone on its event loop: `pipe` and `bare` (the baselines),
// `coquin` (no fault) or `coquin-fault` (latency 0 on both streams, toxicity 1), each in front of every
// upstream server; or, in front of the HTTP server only, `coquin-http` (`protocol: http`, no fault) or
// `coquin-http-status` (protocol http with an `http_status` fault that matches every request, at
// toxicity 0: matched, drawn, never fired). coquin runs as `coquin serve` runs it (startCoquin: the
// control API, metrics, the journal and the log observer all on; logs at info, written nowhere), so the
// figures include what ships. It reports ports, memory and CPU over IPC, and adds or removes faults on
// its proxies at run time (`fault`, `unfault`) through the server's registry, as the control API would.
// `coquin-before` is `coquin` built from another checkout (`npm run bench -- --before DIR`, DIR holding a
// built tree: its dist/src/server.js), for a before/after comparison in one run.
import { Writable } from 'node:stream'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FaultSpec } from '../src/faults/fault.js'
import type * as Server from '../src/server.js'
import type * as Log from '../src/core/log.js'
import { startBareProxy, startPipeProxy } from './pipe-proxy.js'
import { collectGarbage, serve } from './ipc.js'

export type ProxyKind = 'bare' | 'pipe' | 'coquin' | 'coquin-before' | 'coquin-fault' | 'coquin-http' | 'coquin-http-status'
const KINDS: readonly ProxyKind[] = ['bare', 'pipe', 'coquin', 'coquin-before', 'coquin-fault', 'coquin-http', 'coquin-http-status']
/** Kinds that speak HTTP: they only proxy the `http` upstream. */
const HTTP_ONLY: readonly ProxyKind[] = ['coquin-http', 'coquin-http-status']

const kind = process.argv[2] as ProxyKind
if (!KINDS.includes(kind)) {
  console.error(`proxy-worker: unknown kind ${String(kind)}`)
  process.exit(2)
}

const counters: (() => number)[] = []
const nowhere = new Writable({ write(_chunk, _encoding, done) { done() } })
const srcDir = kind === 'coquin-before'
  ? pathToFileURL(path.join(process.env['COQUIN_BEFORE'] ?? '.', 'dist', 'src') + path.sep)
  : new URL('../src/', import.meta.url)
const { startCoquin } = await import(new URL('server.js', srcDir).href) as typeof Server
const { createLogger } = await import(new URL('core/log.js', srcDir).href) as typeof Log
const server = await startCoquin({ port: 0, log: createLogger({ level: 'info', destination: nowhere }) })
const registry = server.registry

async function start(upstreams: Record<string, number>): Promise<Record<string, number>> {
  const ports: Record<string, number> = {}
  const http = HTTP_ONLY.includes(kind)
  for (const [name, port] of Object.entries(upstreams)) {
    if (http && name !== 'http') continue
    if (kind === 'pipe' || kind === 'bare') {
      const p = await (kind === 'pipe' ? startPipeProxy : startBareProxy)({ host: '127.0.0.1', port })
      counters.push(p.connections)
      ports[name] = p.port
    } else {
      const toxics = kind === 'coquin-fault'
        ? [{ name: 'latency0', type: 'latency', stream: 'both', toxicity: 1, attributes: { latency: 0 } }]
        : kind === 'coquin-http-status'
          ? [{ name: 'status0', type: 'http_status', toxicity: 0, attributes: { match: { method: 'GET', path_prefix: '/' }, status: 503 } }]
          : []
      const protocol = http ? 'http' : 'tcp'
      const p = await registry.create({ name, listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol, toxics })
      counters.push(() => p.connections)
      ports[name] = p.port
    }
  }
  return ports
}

const connections = () => counters.reduce((n, c) => n + c(), 0)

serve({
  start: args => start(args['upstreams'] as Record<string, number>),
  stats: () => {
    collectGarbage()
    const m = process.memoryUsage()
    return { rss: m.rss, heapUsed: m.heapUsed, connections: connections(), gc: typeof globalThis.gc === 'function' }
  },
  connections: () => connections(),
  /** Adds a fault to one of this worker's proxies (named after its upstream: echo, source, sink, http). */
  fault: args => {
    const f = registry.makeFault(args['spec'] as FaultSpec)
    registry.get(args['proxy'] as string).addFault(f)
    return f.name
  },
  unfault: args => { registry.get(args['proxy'] as string).removeFault(args['name'] as string); return true },
  cpu: () => { const c = process.cpuUsage(); return c.user + c.system },
})
