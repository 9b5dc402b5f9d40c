// coquin's built-in demo upstreams, for the default config: a TCP echo server and an HTTP hello
// server, so that a new user can try a faulty proxy without any backend of their own.
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { parseAddress } from '../datapath/proxy.js'

export interface DemoOptions { echo?: string; http?: string }
export interface Demo { close(): Promise<void>; echo?: string; http?: string }

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const servers: net.Server[] = []
  const sockets = new Set<net.Socket>()
  const track = (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}) }
  const close = async () => {
    for (const s of sockets) s.destroy()
    await Promise.all(servers.map(s => new Promise(r => s.close(r))))
  }
  const start = async (server: net.Server, addr: string) => {
    const { host, port } = parseAddress('demo', addr)
    servers.push(server)
    server.listen(port, host)
    try {
      await once(server, 'listening')
    } catch (err) {
      throw new Error(`cannot start the demo upstream on ${addr}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  try {
    if (opts.echo) {
      const echo = net.createServer(s => { track(s); s.pipe(s) })
      await start(echo, opts.echo)
    }
    if (opts.http) {
      let n = 0
      const web = http.createServer((req, res) => {
        const body = `hello from coquin's demo upstream: request ${++n}, ${req.method} ${req.url}\n`
        req.resume()
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
      web.on('connection', track)
      await start(web, opts.http)
    }
  } catch (err) {
    await close()
    throw err
  }
  return { close, ...(opts.echo ? { echo: opts.echo } : {}), ...(opts.http ? { http: opts.http } : {}) }
}
