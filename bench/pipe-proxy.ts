// The baseline: the plain Node proxy everyone writes first, `client.pipe(upstream).pipe(client)`,
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
