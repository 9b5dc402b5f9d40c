// Worker process for bench/protocols.ts: one coquin, as `coquin serve` runs it (control API, metrics,
// journal and log observer on; logs at info, written nowhere), with two proxies in front of each server:
// `tcp` (the fast path) and the protocol's own (`redis`, `postgres`), no fault. Reports ports and CPU.
import { Writable } from 'node:stream'
import { startCoquin } from '../src/server.js'
import { createLogger } from '../src/core/log.js'
import { serve } from './ipc.js'

const nowhere = new Writable({ write(_chunk, _encoding, done) { done() } })
const server = await startCoquin({ port: 0, log: createLogger({ level: 'info', destination: nowhere }) })

serve({
  /** upstreams: protocol → port; answers `${protocol}` and `${protocol}-tcp` → listen port. */
  start: async args => {
    const ports: Record<string, number> = {}
    for (const [protocol, port] of Object.entries(args['upstreams'] as Record<string, number>)) {
      for (const mode of [protocol, 'tcp'] as const) {
        const name = mode === 'tcp' ? `${protocol}-tcp` : protocol
        const p = await server.registry.create({ name, listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: mode as never })
        ports[name] = p.port
      }
    }
    return ports
  },
  /** CPU seconds used so far (user + system). */
  cpu: () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 },
})
