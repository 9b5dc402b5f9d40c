// The upstream servers of the benchmark, on 127.0.0.1, port 0: echo (64 B ping-pong), source (streams
// as fast as the reader takes it), sink (reads and counts everything) and http (a minimal keep-alive
// HTTP/1.1 responder, so that the HTTP figures measure the proxy, not node:http's parser).
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

const HTTP_RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok')
const END_OF_HEAD = Buffer.from('\r\n\r\n')

/**
 * Answers every bodiless request (a GET: its head ends at CRLF CRLF) with a fixed 200 "ok" on a kept-
 * alive connection, in order, pipelined or not. Not a general HTTP server: the load sends GETs only.
 */
export function startHttp(): Promise<net.Server> {
  return listen(s => {
    s.setNoDelay(true)
    let tail: Buffer = Buffer.alloc(0)                    // the last bytes of the previous chunk: a CRLF CRLF may straddle
    s.on('data', (c: Buffer) => {
      const buf = tail.length > 0 ? Buffer.concat([tail, c]) : c
      let n = 0
      let from = 0
      for (let i = buf.indexOf(END_OF_HEAD, from); i >= 0; i = buf.indexOf(END_OF_HEAD, from)) { n++; from = i + 4 }
      tail = buf.subarray(Math.max(from, buf.length - 3))
      if (n === 1) s.write(HTTP_RESPONSE)
      else if (n > 1) s.write(Buffer.concat(Array.from({ length: n }, () => HTTP_RESPONSE)))
    })
  })
}

export interface Servers { echo: number; source: number; sink: number; http: number }
