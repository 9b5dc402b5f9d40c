// What every example needs besides its clients: bounded waits, a real HTTP backend that counts what
// it sees, an embedded coquin torn down with the test, and a reader for coquin's Prometheus metrics.
// Not a test file itself (tap runs examples/**/*.test.ts only).
//
// The examples import coquin from the source tree; in your project the same names come from
// 'coquin' (startCoquin, Registry, builtins) and 'coquin/client' (Coquin).
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { startCoquin, type CoquinServer } from '../src/index.js'
import { Coquin } from '../src/client/index.js'
import { ManualClock } from '../src/core/clock.js'
export { ManualClock }
export { findExecutable, freePort, redisServer, redisSkip, postgresServer, postgresSkip, pgBinDirs } from '../test/helpers/servers.js'

type T = { teardown(fn: () => unknown): void }

/** Rejects if the promise has not settled within ms: every wait in an example is bounded. */
export function within<V>(p: Promise<V>, ms: number, what = 'event'): Promise<V> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms)
    }),
  ])
}

/** Waits until cond() holds, checking on each event-loop turn: for state that has no event of its own. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const start = performance.now()
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms}ms waiting for ${what}`)
    await new Promise(r => setImmediate(r))
  }
}

export interface Backend {
  readonly port: number
  /** TCP connections accepted so far. */
  connections: number
  /** Requests received so far (counted when the request has arrived in full). */
  requests: number
  /** Connections open now. */
  readonly sockets: Set<net.Socket>
}

/**
 * A real node:http server on 127.0.0.1:0 that reads each request body and answers with `handler`
 * (default: 200 "ok"). Keep-alive as Node's default (5 s). Closed, with every connection, at teardown.
 */
export async function httpBackend(
  t: T,
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void = (_req, res) => { res.end('ok') },
): Promise<Backend> {
  const sockets = new Set<net.Socket>()
  const state = { port: 0, connections: 0, requests: 0, sockets }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => { state.requests++; handler(req, res, Buffer.concat(chunks)) })
  })
  server.on('connection', s => {
    state.connections++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  state.port = (server.address() as net.AddressInfo).port
  return state
}

/** An embedded coquin (registry + control API on 127.0.0.1:0) and a typed client for it; `seed` replays every draw. */
export async function withCoquin(t: T, opts: { seed?: number } = {}): Promise<{ server: CoquinServer; coquin: Coquin }> {
  const server = await startCoquin({ port: 0, ...opts })
  t.teardown(() => server.close())
  return { server, coquin: new Coquin(server.url) }
}

/**
 * One sample from coquin's `GET /metrics` (Prometheus text): the value of `name` for the series whose
 * labels include all of `labels`, or 0 if there is none yet.
 */
export async function metric(coquinUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${coquinUrl}/metrics`, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(x => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3])
  }
  return 0
}


export interface Reply { status: number; body: string }

/** One GET with node:http (pass `agent`, `signal`, …); resolves with the status and body text. */
export function httpGet(opts: http.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(opts, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

/** A full queue refused the job: load shed on purpose. */
export class PoolFullError extends Error {
  override name = 'PoolFullError'
  readonly code = 'EPOOLFULL'
  constructor() { super('work pool full: job refused') }
}

/**
 * A worker pool: at most `concurrency` jobs run at once, the rest wait in a FIFO queue of at most
 * `maxQueue` (default: no bound). A job that finds the queue full is refused at once (PoolFullError).
 */
export class WorkPool {
  readonly concurrency: number
  readonly maxQueue: number
  active = 0
  /** Longest the queue has been. */
  peakQueue = 0
  /** Jobs refused because the queue was full. */
  shed = 0
  readonly #queue: { start: () => void; reject: (err: Error) => void }[] = []
  #closed = false

  constructor(opts: { concurrency: number; maxQueue?: number }) {
    this.concurrency = opts.concurrency
    this.maxQueue = opts.maxQueue ?? Infinity
  }

  get queued(): number { return this.#queue.length }

  run<R>(job: () => Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(new Error('work pool closed'))
    if (this.active >= this.concurrency && this.#queue.length >= this.maxQueue) {
      this.shed++
      return Promise.reject(new PoolFullError())
    }
    return new Promise<R>((resolve, reject) => {
      const start = () => {
        this.active++
        job().then(resolve, reject).finally(() => {
          this.active--
          if (!this.#closed) this.#queue.shift()?.start()
        })
      }
      if (this.active < this.concurrency) start()
      else {
        this.#queue.push({ start, reject })
        this.peakQueue = Math.max(this.peakQueue, this.#queue.length)
      }
    })
  }

  /** Refuses new jobs and fails the queued ones (running ones finish on their own). */
  close(): void {
    this.#closed = true
    for (const { reject } of this.#queue.splice(0)) reject(new Error('work pool closed'))
  }
}

// ── Real servers (redis-server, PostgreSQL) ──────────────────────────────────────────────────────

