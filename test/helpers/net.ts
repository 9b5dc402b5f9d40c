// Fixtures for tests: real servers and clients on 127.0.0.1, port 0, torn down with the test.
import net from 'node:net'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { Registry, type RegistryOptions } from '../../src/control/registry.js'
import { builtins } from '../../behaviors/index.js'
import type { Proxy } from '../../src/datapath/proxy.js'
import type { FaultSpec } from '../../src/faults/fault.js'

type T = { teardown(fn: () => unknown): void }

/** Rejects if the promise has not settled within ms: every wait in a test is bounded. */
export function within<V>(p: Promise<V>, ms: number, what = 'event'): Promise<V> {
  let timer: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms) }),
  ])
}

export async function listen(t: T, handler: (s: net.Socket) => void, opts: net.ServerOpts = {}): Promise<net.Server & { port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true, ...opts }, s => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    handler(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return Object.assign(server, { port: (server.address() as net.AddressInfo).port, sockets })
}

/** Echoes every byte; ends its side when the client ends. */
export const echoServer = (t: T) => listen(t, s => { s.pipe(s) })

export async function registry(t: T, opts: Partial<RegistryOptions> = {}): Promise<Registry> {
  const r = new Registry({ behaviors: builtins, seed: 42, ...opts })
  t.teardown(() => r.close())
  return r
}

let n = 0
export async function proxyTo(t: T, port: number, toxics: FaultSpec[] = [], opts: Partial<RegistryOptions> = {}): Promise<{ registry: Registry; proxy: Proxy }> {
  const reg = await registry(t, opts)
  const proxy = await reg.create({ name: `p${++n}`, listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, toxics })
  return { registry: reg, proxy }
}

export async function connect(t: T, port: number, opts: Partial<net.NetConnectOpts> = {}): Promise<net.Socket> {
  const c = net.connect({ port, host: '127.0.0.1', ...opts } as net.NetConnectOpts)
  t.teardown(() => c.destroy())
  await within(once(c, 'connect'), 5000, 'connect')
  return c
}

/** An echo upstream, a proxy with these faults in front of it, and a connected client. */
export async function withEchoProxy(t: T, toxics: FaultSpec[] = [], opts: Partial<RegistryOptions> = {}) {
  const echo = await echoServer(t)
  const { registry, proxy } = await proxyTo(t, echo.port, toxics, opts)
  const client = await connect(t, proxy.port)
  return { echo, registry, proxy, client }
}

/** Resolves with everything the socket sends until it ends or closes, and how it ended. */
export function collect(s: net.Socket): Promise<{ data: Buffer; error?: NodeJS.ErrnoException }> {
  const chunks: Buffer[] = []
  s.on('data', c => chunks.push(c))
  return new Promise(resolve => {
    let error: NodeJS.ErrnoException | undefined
    s.on('error', e => { error = e })
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ...(error ? { error } : {}) }))
  })
}

/** Reads until n bytes have arrived. */
export function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let got = 0
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      chunks.push(c); got += c.length
      if (got >= n) { s.off('data', onData); s.off('close', onClose); resolve(Buffer.concat(chunks)) }
    }
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`))
    s.on('data', onData)
    s.on('close', onClose)
  })
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/**
 * Streams `total` random bytes through a socket in random-sized writes (respecting backpressure)
 * and returns the SHA-256 of what was sent.
 */
export async function sendRandom(s: net.Socket, total: number, opts: { end?: boolean; maxChunk?: number } = {}): Promise<string> {
  const hash = createHash('sha256')
  const block = randomBytes(1 << 20)
  let sent = 0
  while (sent < total) {
    const size = Math.min(total - sent, 1 + Math.floor(Math.random() * (opts.maxChunk ?? 256 * 1024)))
    const off = Math.floor(Math.random() * (block.length - size))
    const chunk = block.subarray(off, off + size)
    hash.update(chunk)
    sent += size
    if (!s.write(chunk)) await within(once(s, 'drain'), 30_000, 'drain')
  }
  if (opts.end !== false) s.end()
  return hash.digest('hex')
}

/** Hashes everything a socket sends until it ends. */
export function hashUntilEnd(s: net.Socket): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  s.on('data', c => { hash.update(c); bytes += c.length })
  return within(once(s, 'end'), 120_000, 'end').then(() => ({ hash: hash.digest('hex'), bytes }))
}

/** Waits until cond() holds, checking on each event-loop turn: for state that has no event. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms}ms waiting for ${what}`)
    await new Promise(r => setImmediate(r))
  }
}

/**
 * Streams `bytes` random bytes through an echo link, asserts every byte came back (SHA-256 equal),
 * then waits for the client to close and the proxy to have no link left.
 */
export async function assertEchoExact(t: { equal(a: unknown, b: unknown, msg: string): unknown }, client: net.Socket,
  proxy: Proxy, bytes: number, label = ''): Promise<void> {
  const received = hashUntilEnd(client)
  const sent = await sendRandom(client, bytes)
  const got = await received
  t.equal(got.bytes, bytes, `${label}every byte came back`)
  t.equal(got.hash, sent, `${label}SHA-256 equal`)
  await within(once(client, 'close'), 10_000, 'close')
  await until(() => proxy.connections === 0)
}
