// A minimal HTTP-mode proxy for the HTTP layer's tests: a net.Server whose links put the two HTTP
// stages between the client socket and one upstream connection, as link.ts will. Plus HTTP fixtures.
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { Catalog, Fault, type FaultSpec } from '../../src/faults/fault.js'
import { builtins } from '../../behaviors/index.js'
import { createHttpStages, type HttpLinkView } from '../../src/protocols/http/index.js'
import { seededRandom } from '../../src/core/random.js'
import { ManualClock, realClock, type Clock } from '../../src/core/clock.js'
import { silentLogger } from '../../src/core/log.js'
import type { Sink, Stage } from '../../src/faults/behavior.js'

type T = { teardown(fn: () => unknown): void }

const HIGH_WATER = 512 * 1024

export { ManualClock }

export const catalog = new Catalog(builtins)

export function makeFault(spec: FaultSpec): Fault {
  const n = catalog.normalize(spec)
  return new Fault(n.name, n.type, n.stream, n.toxicity, Object.freeze(n.attributes), catalog.get(n.type)!)
}

export interface HarnessOptions {
  faults?: FaultSpec[]
  headerFaults?: boolean
  /** What the link view answers when framing gives up (the proxy's http_fallback). */
  httpFallback?: 'pass' | 'close'
  clock?: Clock
  seed?: number
}

export interface Harness {
  port: number
  faults: Fault[]
  clock: Clock
  /** Hits per fault name, fallbacks and close/reset reasons, as the core would count them. */
  applied: Map<string, number>
  fallbacks: string[]
  ends: string[]
  /** Links opened so far, and open now. */
  opened: number
  readonly open: number
  /** Bytes held by the HTTP stages of every open link. */
  held(): number
  add(spec: FaultSpec): Fault
  remove(name: string): void
}

function resetSocket(s: net.Socket): void {
  if (s.destroyed) return
  if (s.connecting || !(s as unknown as { _handle?: unknown })._handle) s.destroy()
  else s.resetAndDestroy()
}

/** A proxy in HTTP mode in front of 127.0.0.1:upstreamPort, on 127.0.0.1:0, torn down with the test. */
export async function httpProxy(t: T, upstreamPort: number, opts: HarnessOptions = {}): Promise<Harness> {
  const clock = opts.clock ?? realClock
  const random = seededRandom(opts.seed ?? 42)
  const faults = (opts.faults ?? []).map(makeFault)
  const links = new Set<() => void>()
  const held = new Set<() => number>()
  let nextId = 1
  const h: Harness = {
    port: 0, faults, clock, applied: new Map(), fallbacks: [], ends: [], opened: 0,
    get open() { return links.size },
    held: () => [...held].reduce((n, f) => n + f(), 0),
    add(spec) { const f = makeFault(spec); faults.push(f); return f },
    remove(name) { faults.splice(faults.findIndex(f => f.name === name), 1) },
  }

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, client => {
    h.opened++
    const upstream = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true, noDelay: true })
    let done = false
    let sockets = 0
    const destroy = () => {
      if (done) return
      done = true
      links.delete(destroy)
      held.delete(heldNow)
      stages.upstream.destroy()
      stages.downstream.destroy()
      client.destroy()
      upstream.destroy()
    }
    links.add(destroy)
    const quiet = (s: net.Socket) => { s.removeAllListeners('data'); s.removeAllListeners('end'); s.on('data', () => {}); s.resume() }
    const view: HttpLinkView = {
      id: nextId++,
      client: { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 },
      log: silentLogger,
      clock,
      random,
      acted() {},
      reset(reason) {
        if (done) return
        h.ends.push(`reset:${reason}`)
        resetSocket(client); resetSocket(upstream)
        destroy()
      },
      close(reason) {
        if (done) return
        h.ends.push(`close:${reason}`)
        stages.upstream.destroy(); stages.downstream.destroy()
        for (const s of [client, upstream]) { quiet(s); s.end(() => s.destroy()) }
      },
      applied(f) { h.applied.set(f.name, (h.applied.get(f.name) ?? 0) + 1) },
      fallback(stream, reason) {
        h.fallbacks.push(`${stream === 'upstream' ? 'request' : 'response'}: ${reason}`)
        return opts.httpFallback ?? 'pass'
      },
    }
    const sink = (dst: net.Socket, src: () => net.Socket, stage: () => Stage): Sink => ({
      write: c => { if (!dst.destroyed && !dst.writableEnded) dst.write(c); check(src(), dst, stage()) },
      end: () => { if (!dst.destroyed) dst.end() },
    })
    const stages = createHttpStages(view, () => faults, {
      upstream: sink(upstream, () => client, () => stages.upstream),
      downstream: sink(client, () => upstream, () => stages.downstream),
    }, { headerFaults: opts.headerFaults ?? false })
    const check = (src: net.Socket, dst: net.Socket, stage: Stage) => {
      if (done) return
      const total = stage.held + dst.writableLength
      if (total > HIGH_WATER) src.pause()
      else if (src.isPaused() && dst.writableLength < dst.writableHighWaterMark) src.resume()
    }
    const wire = (src: net.Socket, dst: net.Socket, stage: Stage) => {
      src.on('data', c => { stage.write(c); check(src, dst, stage) })
      src.on('end', () => stage.end())
      dst.on('drain', () => check(src, dst, stage))
    }
    const heldNow = () => stages.upstream.held + stages.downstream.held
    held.add(heldNow)
    wire(client, upstream, stages.upstream)
    wire(upstream, client, stages.downstream)
    for (const [s, other] of [[client, upstream], [upstream, client]] as const) {
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (done) return
        if (err.code === 'ECONNRESET' || err.code === 'ECONNREFUSED') resetSocket(other)
        destroy()
      })
      s.on('close', () => { if (++sockets === 2) destroy() })
    }
    upstream.once('connect', () => client.resume())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  h.port = (server.address() as net.AddressInfo).port
  t.teardown(() => { for (const d of [...links]) d(); server.close() })
  return h
}

// HTTP fixtures -----------------------------------------------------------------------------------

/** A node:http server on 127.0.0.1:0 (no Date header, so responses are byte-stable), torn down with the test. */
export async function httpServer(t: T, handler: http.RequestListener): Promise<http.Server & { port: number }> {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => { res.sendDate = false; handler(req, res) })
  const sockets = new Set<net.Socket>()
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return Object.assign(server, { port: (server.address() as net.AddressInfo).port })
}

/** A raw TCP server that answers each connection with whatever respond() writes, given what it read. */
export async function rawServer(t: T, onConnection: (s: net.Socket) => void): Promise<net.Server & { port: number }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, s => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    onConnection(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return Object.assign(server, { port: (server.address() as net.AddressInfo).port })
}

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; socket: net.Socket }

/** One request through node:http (an Agent keeps connections alive when given). */
export function request(port: number, opts: http.RequestOptions & { body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, ...rest } = opts
    const req = http.request({ host: '127.0.0.1', port, ...rest }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), socket: res.socket }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Sends bytes on a fresh connection (ending it unless told not to); resolves with what came back until close, or until done(data). */
export async function exchange(t: T, port: number, data: Buffer | string, opts: { end?: boolean; until?: (data: Buffer) => boolean } = {}): Promise<{ data: Buffer; error?: string; socket: net.Socket }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: false })
  t.teardown(() => s.destroy())
  const chunks: Buffer[] = []
  let error: string | undefined
  s.on('error', (e: NodeJS.ErrnoException) => { error = e.code })
  await once(s, 'connect')
  const done = new Promise<void>(resolve => {
    s.on('data', c => { chunks.push(c); if (opts.until?.(Buffer.concat(chunks))) resolve() })
    s.on('close', () => resolve())
  })
  if (opts.end === false) s.write(data)
  else s.end(data)
  await done
  return { data: Buffer.concat(chunks), ...(error ? { error } : {}), socket: s }
}

/** A raw keep-alive client: one connection, one request at a time, each response read by its Content-Length. */
export async function rawClient(t: T, port: number) {
  const s = net.connect({ port, host: '127.0.0.1' })
  t.teardown(() => s.destroy())
  await once(s, 'connect')
  let buf = Buffer.alloc(0)
  let closed = false
  let error: string | undefined
  let wake: (() => void) | null = null
  s.on('data', c => { buf = Buffer.concat([buf, c]); wake?.() })
  s.on('error', (e: NodeJS.ErrnoException) => { error = e.code })
  s.on('close', () => { closed = true; wake?.() })
  const more = () => new Promise<void>(r => { wake = () => { wake = null; r() } })
  return {
    socket: s,
    get closed() { return closed },
    get error() { return error },
    /** Sends a request; resolves with the response's bytes, or null if the connection ended first. */
    async send(req: string | Buffer, opts: { head?: boolean } = {}): Promise<Buffer | null> {
      if (closed) return null
      s.write(req)
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end >= 0) {
          const head = buf.subarray(0, end).toString('latin1')
          const m = /\r\ncontent-length: *(\d+)/i.exec(head)
          const total = end + 4 + (m && !opts.head ? Number(m[1]) : 0)
          if (buf.length >= total) {
            const res = buf.subarray(0, total)
            buf = buf.subarray(total)
            return res
          }
        }
        if (closed) return null
        await more()
      }
    },
  }
}
