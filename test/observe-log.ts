import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { connect, echoServer, listen, proxyTo, readBytes, until, within } from './helpers/net.js'
import { loggingObserver } from '../src/observe/log-observer.js'
import { createMetrics } from '../src/observe/metrics.js'
import { observers } from '../src/observe/observer.js'
import { throttledLog } from '../src/core/log.js'
import type { Clock } from '../src/core/clock.js'
import type { Registry } from '../src/control/registry.js'

/** A pino logger writing JSON lines into an array. */
function memoryLogger(level: string) {
  const lines: Record<string, unknown>[] = []
  const log = pino({ level }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { log, lines }
}

/** A clock that moves only when told: throttling is decided on it, so the test never sleeps. */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0
  return {
    now: () => now,
    setTimeout: () => ({ cancel() {} }),
    advance(ms) { now += ms },
  }
}

async function deadPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const dead = await listen(t, () => {})
  await new Promise(r => dead.close(r))
  return dead.port
}

/** Connects and waits until the proxy closes the connection (it does so cleanly when the upstream is down). */
function refusedOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1' })
    c.on('error', reject)
    c.on('close', () => resolve())
    c.resume()
  })
}

/** n connections, `concurrency` at a time. */
async function hammer(port: number, n: number, concurrency: number): Promise<void> {
  let next = 0
  const worker = async () => { while (next < n) { next++; await refusedOnce(port) } }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
}

t.test('10,000 refused upstream connects log a bounded number of lines', async t => {
  const { log, lines } = memoryLogger('warn')
  const clock = manualClock()
  const warn = throttledLog(log, clock, 10_000)
  let reg: Registry | undefined
  const metrics = createMetrics({ coquin: () => reg?.proxies.values() ?? [] })
  const port = await deadPort(t)
  const { registry, proxy } = await proxyTo(t, port, [], { observer: observers(loggingObserver(log, warn), metrics.observer) })
  reg = registry

  const N = 10_000
  const started = Date.now()
  await within(hammer(proxy.port, N, 200), 30_000, 'refused connects')
  t.comment(`${N} refused connects in ${Date.now() - started} ms`)
  await until(() => proxy.connections === 0)
  t.ok(lines.length <= 3, `${lines.length} lines for ${N} refused connects`)
  t.match(lines[0], { level: 40, msg: 'upstream unreachable', proxy: proxy.name, code: 'ECONNREFUSED', suppressed: 0 })

  // The interval passes: the next refused connect logs once, with the count of those held back.
  clock.advance(10_000)
  await refusedOnce(proxy.port)
  await until(() => lines.length >= 2)
  t.ok(lines.length <= 3, `${lines.length} lines in all`)
  t.match(lines.at(-1), { msg: 'upstream unreachable', proxy: proxy.name, code: 'ECONNREFUSED', suppressed: N - 1 })

  const { body } = await metrics.text()
  t.match(body, `coquin_upstream_connect_errors_total{proxy="${proxy.name}",code="ECONNREFUSED"} ${N + 1}`, 'every one counted')
})

t.test('a link logs one line at open and one at close, at debug', async t => {
  const { log, lines } = memoryLogger('debug')
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [], { observer: loggingObserver(log, throttledLog(log, manualClock())) })
  const client = await connect(t, proxy.port)
  client.write('hello')
  await readBytes(client, 5)
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(lines.length, 2)
  t.match(lines[0], { level: 20, msg: 'link opened', proxy: proxy.name, link: Number })
  t.match(lines[1], { level: 20, msg: 'link closed', proxy: proxy.name, reason: 'client_close', up: 5, down: 5, ms: Number })
  t.notOk('err' in lines[1]!, 'no err on a clean close')
})

t.test('nothing is built for debug lines when debug is off', async t => {
  const { log, lines } = memoryLogger('info')
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [], { observer: loggingObserver(log, throttledLog(log, manualClock())) })
  const client = await connect(t, proxy.port)
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(lines.length, 0)
})

t.test('the core adds no per-connection line of its own for a dead upstream', async t => {
  const { log, lines } = memoryLogger('warn')
  const clock = manualClock()
  const port = await deadPort(t)
  const { proxy } = await proxyTo(t, port, [], { log, observer: loggingObserver(log, throttledLog(log, clock)) })
  await within(hammer(proxy.port, 50, 10), 10_000, 'refused connects')
  await until(() => proxy.connections === 0)
  t.ok(lines.length <= 3, `${lines.length} lines for 50 refused connects: ${[...new Set(lines.map(l => l.msg))].join(', ')}`)
})
