// The upstream servers of the benchmark, on 127.0.0.1, port 0: echo (64 B ping-pong), source (streams
// as fast as the reader takes it) and sink (reads and counts everything).
import net from 'node:net'
import { once } from 'node:events'

export const CHUNK = 64 * 1024

async function listen(handler: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(s => {
    s.on('error', () => {})
    handler(s)
  })
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 })
  await once(server, 'listening')
  return server
}

export function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port
}

/** Writes back every byte, with Nagle off so a small echo leaves at once. */
export function startEcho(): Promise<net.Server> {
  return listen(s => {
    s.setNoDelay(true)
    s.pipe(s)
  })
}

/** Writes 64 KiB chunks for as long as the connection is open, following backpressure. */
export function startSource(): Promise<net.Server> {
  const chunk = Buffer.alloc(CHUNK, 0x73)
  return listen(s => {
    const pump = () => { while (!s.destroyed && s.write(chunk)) { /* until the buffer is full */ } }
    s.on('drain', pump)
    pump()
  })
}

/** Reads and discards; `bytes()` is the total read over all connections. */
export async function startSink(): Promise<{ server: net.Server; bytes: () => number }> {
  let total = 0
  const server = await listen(s => { s.on('data', (c: Buffer) => { total += c.length }) })
  return { server, bytes: () => total }
}

export interface Servers { echo: number; source: number; sink: number }
