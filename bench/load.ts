// Load generators, run in the orchestrating process (never in a proxy's or a server's process).
// Every wait is bounded; every socket opened here is destroyed before the function returns.
import net from 'node:net'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { CHUNK } from './servers.js'

const HOST = '127.0.0.1'

export function connect(port: number, timeoutMs = 5_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port, noDelay: true })
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`connect to ${port} timed out`)) }, timeoutMs)
    s.once('error', err => { clearTimeout(timer); reject(err) })
    s.once('connect', () => {
      clearTimeout(timer)
      s.removeAllListeners('error')
      s.on('error', () => {})
      resolve(s)
    })
  })
}

/** Opens n connections, `batch` at a time (kept under the listen backlog). */
export async function connectMany(port: number, n: number, batch = 100): Promise<net.Socket[]> {
  const out: net.Socket[] = []
  try {
    for (let i = 0; i < n; i += batch) {
      const size = Math.min(batch, n - i)
      const got = await Promise.allSettled(Array.from({ length: size }, () => connect(port)))
      for (const r of got) if (r.status === 'fulfilled') out.push(r.value)
      const failed = got.find(r => r.status === 'rejected')
      if (failed) throw (failed as PromiseRejectedResult).reason
    }
    return out
  } catch (err) {
    for (const s of out) s.destroy()
    throw err
  }
}

export const destroyAll = (socks: net.Socket[]) => { for (const s of socks) s.destroy() }

/** Bytes/s in MB (10^6) read from a source server over `conns` connections, after a warm-up. */
export async function bulkDown(port: number, conns: number, warmMs: number, durMs: number): Promise<number> {
  const socks = await connectMany(port, conns)
  try {
    let bytes = 0
    for (const s of socks) s.on('data', (c: Buffer) => { bytes += c.length })
    await sleep(warmMs)
    const b0 = bytes
    const t0 = performance.now()
    await sleep(durMs)
    return (bytes - b0) / ((performance.now() - t0) / 1000) / 1e6
  } finally {
    destroyAll(socks)
  }
}

/**
 * The rate of a paced stream (a bandwidth fault releases bytes in bursts, one per timer tick), in MB/s
 * (10^6 B/s), over one connection: measured from the first burst after the warm-up to the last one
 * before the window ends, arrival to arrival, so that how many bursts fall in the window does not bias
 * the figure (at 10 ms a tick, one burst more or less in 2 s would be ±0.5 %).
 */
export async function pacedDown(port: number, warmMs: number, durMs: number): Promise<{ rate: number; bytes: number; seconds: number }> {
  const [s] = await connectMany(port, 1)
  let total = 0
  let first: { t: number; bytes: number } | undefined
  let last: { t: number; bytes: number } | undefined
  let measuring = false
  try {
    s!.on('data', (c: Buffer) => {
      const t = performance.now()
      // Bytes of the first arrival in the window are before its timestamp: count from after it.
      if (measuring) { total += c.length; if (!first) first = { t, bytes: total }; last = { t, bytes: total } }
    })
    await sleep(warmMs)
    measuring = true
    await sleep(durMs)
    measuring = false
  } finally {
    destroyAll([s!])
  }
  if (!first || !last || last.t <= first.t) throw new Error(`too few bytes arrived on port ${port} to measure a rate`)
  const seconds = (last.t - first.t) / 1000
  const bytes = last.bytes - first.bytes
  return { rate: bytes / seconds / 1e6, bytes, seconds }
}

/** Bytes/s in MB written to a sink server, as counted by the sink (`sunk()` asks its process). */
export async function bulkUp(port: number, conns: number, warmMs: number, durMs: number, sunk: () => Promise<number>): Promise<number> {
  const socks = await connectMany(port, conns)
  const chunk = Buffer.alloc(CHUNK, 0x75)
  let running = true
  try {
    for (const s of socks) {
      const pump = () => { while (running && !s.destroyed && s.write(chunk)) { /* until the buffer is full */ } }
      s.on('drain', pump)
      pump()
    }
    await sleep(warmMs)
    const b0 = await sunk()
    const t0 = performance.now()
    await sleep(durMs)
    const b1 = await sunk()
    return (b1 - b0) / ((performance.now() - t0) / 1000) / 1e6
  } finally {
    running = false
    destroyAll(socks)
  }
}

export interface RoundTrips {
  p50: number; p99: number; rate: number; samples: number
  /** Every round trip of the window, in µs, sorted. */
  sorted: Float64Array
}

/** 64 B ping-pong on each of `conns` connections (one message in flight on each); µs and round trips/s. */
export async function pingPong(port: number, conns: number, warmMs: number, durMs: number): Promise<RoundTrips> {
  const socks = await connectMany(port, conns)
  const msg = Buffer.alloc(64, 0x70)
  const samples: number[] = []
  let running = true
  let winStart = Infinity
  let winEnd = Infinity
  try {
    for (const s of socks) {
      let got = 0
      let sent = performance.now()
      s.on('data', (c: Buffer) => {
        got += c.length
        if (got < msg.length) return
        got -= msg.length
        const now = performance.now()
        if (sent >= winStart && now <= winEnd) samples.push(now - sent)
        if (running) { sent = now; s.write(msg) }
      })
      s.write(msg)
    }
    await sleep(warmMs)
    winStart = performance.now()
    await sleep(durMs)
    winEnd = performance.now()
  } finally {
    running = false
    destroyAll(socks)
  }
  if (samples.length === 0) throw new Error(`no round trip completed on port ${port}`)
  const sorted = Float64Array.from(samples, x => x * 1000).sort()
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), rate: samples.length / ((winEnd - winStart) / 1000), samples: samples.length, sorted }
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

export interface Churn {
  rate: number; errors: number; firstError: string | undefined
  /** Connections completed in all, warm-up and the loops' last ones included (for CPU per connection). */
  total: number
}

/**
 * Connection churn: `workers` loops, each connecting, sending 64 B, reading the echo and closing (the
 * client closes first, so the TIME_WAIT is on the client's side), then starting over. Connections
 * completed per second within the window, after a warm-up. A failed connection (refused, reset, or no
 * echo within 5 s) is counted, and its worker goes on.
 */
export async function churn(port: number, workers: number, warmMs: number, durMs: number): Promise<Churn> {
  const msg = Buffer.alloc(64, 0x63)
  let running = true
  let done = 0
  let errors = 0
  let firstError: string | undefined
  const once64 = () => new Promise<void>(resolve => {
    const s = net.connect({ host: HOST, port, noDelay: true })
    let got = 0
    let ok = false
    const timer = setTimeout(() => s.destroy(new Error('no echo within 5 s')), 5_000)
    s.on('connect', () => s.write(msg))
    s.on('data', (c: Buffer) => {
      got += c.length
      if (got >= msg.length && !ok) { ok = true; done++; s.destroy() }
    })
    s.on('error', err => { errors++; firstError ??= (err as NodeJS.ErrnoException).code ?? err.message })
    s.on('close', () => {
      clearTimeout(timer)
      if (!ok && !s.errored) { errors++; firstError ??= 'closed before the echo' }
      resolve()
    })
  })
  const loops = Array.from({ length: workers }, async () => { while (running) await once64() })
  let rate: number
  try {
    await sleep(warmMs)
    const d0 = done
    const t0 = performance.now()
    await sleep(durMs)
    rate = (done - d0) / ((performance.now() - t0) / 1000)
  } finally {
    running = false
    await Promise.all(loops)
  }
  return { rate, errors, firstError, total: done }
}

/**
 * Opens n connections and sends one byte back and forth on each, so every link is up end to end. A
 * batch is echoed before the next one connects: a client's connect completes in the kernel before the
 * proxy accepts, so connecting all at once would overflow the proxy's accept queue (SYNs dropped, each
 * retried after a second).
 */
export async function openIdle(port: number, n: number, batch = 200): Promise<net.Socket[]> {
  const socks: net.Socket[] = []
  try {
    for (let i = 0; i < n; i += batch) {
      const got = await connectMany(port, Math.min(batch, n - i), batch)
      socks.push(...got)
      await Promise.all(got.map(async s => {
        s.write('x')
        await once(s, 'data', { signal: AbortSignal.timeout(10_000) })
      }))
    }
    return socks
  } catch (err) {
    destroyAll(socks)
    throw err
  }
}

const HTTP_REQUEST = Buffer.from('GET /bench/object HTTP/1.1\r\nHost: bench\r\nUser-Agent: coquin-bench\r\n\r\n')
const END_OF_HEAD = Buffer.from('\r\n\r\n')

/**
 * HTTP/1.1 keep-alive requests/s: `conns` raw sockets, each with one small GET in flight (no
 * pipelining); a response is complete when its head and Content-Length bytes of body have arrived, and
 * the next request leaves at once. Raw sockets rather than node:http's Agent, so that the generator
 * is not the bottleneck. Counts the responses completed within the window after a warm-up.
 */
export async function httpKeepAlive(port: number, conns: number, warmMs: number, durMs: number): Promise<number> {
  const socks = await connectMany(port, conns)
  let running = true
  let done = 0
  let failure: Error | undefined
  try {
    for (const s of socks) {
      let buf: Buffer = Buffer.alloc(0)
      s.on('data', (c: Buffer) => {
        buf = buf.length === 0 ? c : Buffer.concat([buf, c])
        for (;;) {
          const end = buf.indexOf(END_OF_HEAD)
          if (end < 0) return
          const head = buf.toString('latin1', 0, end)
          if (!head.startsWith('HTTP/1.1 200')) { failure ??= new Error(`unexpected response on port ${port}: ${head.split('\r\n', 1)[0]}`); return }
          const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN)
          if (!Number.isFinite(len)) { failure ??= new Error(`response without Content-Length on port ${port}`); return }
          if (buf.length < end + 4 + len) return
          buf = buf.subarray(end + 4 + len)
          done++
          if (running) s.write(HTTP_REQUEST)
        }
      })
      s.on('close', () => { if (running) failure ??= new Error(`connection to port ${port} closed during the run`) })
      s.write(HTTP_REQUEST)
    }
    await sleep(warmMs)
    const d0 = done
    const t0 = performance.now()
    await sleep(durMs)
    const rate = (done - d0) / ((performance.now() - t0) / 1000)
    if (failure) throw failure
    if (done === d0) throw new Error(`no HTTP response completed on port ${port}`)
    return rate
  } finally {
    running = false
    destroyAll(socks)
  }
}
