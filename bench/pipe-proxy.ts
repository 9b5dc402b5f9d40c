// The baselines. The pipe proxy: the plain Node proxy everyone writes first, `client.pipe(upstream).pipe(client)`,
// with no tuning (no noDelay, default buffers). Only what keeps it from crashing or leaking is added:
// error handlers, and a close on one side destroying the other.
import net from 'node:net'
import { once } from 'node:events'

export interface PipeProxy { server: net.Server; port: number; connections: () => number }

export async function startPipeProxy(upstream: { host: string; port: number }): Promise<PipeProxy> {
  let open = 0
  const server = net.createServer(client => {
    open++
    const up = net.connect(upstream.port, upstream.host)
    client.on('error', () => up.destroy())
    up.on('error', () => client.destroy())
    client.on('close', () => { open--; up.destroy() })
    up.on('close', () => client.destroy())
    client.pipe(up).pipe(client)
  })
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  return { server, port: (server.address() as net.AddressInfo).port, connections: () => open }
}

/**
 * Node's floor for a proxied connection: accept, connect, a data listener each way, a FIN passed on, both
 * destroyed when either closes. No streams piping, no bookkeeping, no backpressure (fine for the bench's
 * loads, not for a real proxy): the least any Node proxy, coquin included, spends per connection and per idle link.
 */
export async function startBareProxy(upstream: { host: string; port: number }): Promise<PipeProxy> {
  let open = 0
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, c => {
    open++
    const u = new net.Socket({ allowHalfOpen: true })
    c.on('data', (d: Buffer) => u.write(d))
    u.on('data', (d: Buffer) => c.write(d))
    c.on('end', () => u.end())
    u.on('end', () => c.end())
    c.on('error', () => u.destroy())
    u.on('error', () => c.destroy())
    c.on('close', () => { open--; u.destroy() })
    u.on('close', () => c.destroy())
    u.once('connect', () => { u.setNoDelay(true); c.resume() })
    u.connect({ host: upstream.host, port: upstream.port })
  })
  server.listen({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  return { server, port: (server.address() as net.AddressInfo).port, connections: () => open }
}
