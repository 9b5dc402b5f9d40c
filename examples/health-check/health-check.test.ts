// health-check: three versions of one service's /healthz while coquin cuts the backend. One runs the
// check through the busy work pool (it times out because the pool is saturated, and stays failing
// after the backend is back); one does not look at the backend at all (healthy while it is gone); the
// fix probes the backend itself, off the pool, with its own short timeout.
import t, { type Test } from 'tap'
import http from 'node:http'
import type net from 'node:net'
import { once } from 'node:events'
import { httpBackend, httpGet, until, within, withCoquin, WorkPool, type Reply } from '../support.js'

const WORKERS = 4
/** The work calls' deadline (ms): generous, as real ones are; longer than this whole example. */
const WORK_TIMEOUT = 30_000
/** The fixed check's own deadline for its backend probe (ms). */
const PROBE_TIMEOUT = 200
/** The health checker's deadline (ms): a check with no answer by then counts as failed. */
const CHECK_TIMEOUT = 1000

interface Origin { host: string; port: number }
type HealthStyle = 'through-pool' | 'shallow' | 'fixed'

// ── The service ───────────────────────────────────────────────────────────────────────────────────

/**
 * A real HTTP service: GET /work calls the backend in a pool of 4 workers (queue unbounded), GET /version
 * answers at once, GET /healthz as `style` says.
 */
async function startService(t: Test, style: HealthStyle, backend: Origin) {
  const agent = new http.Agent({ keepAlive: true })
  const pool = new WorkPool({ concurrency: WORKERS })
  const health = { queued: 0, started: 0 }
  const callBackend = (path: string, a: http.Agent, timeout: number) =>
    httpGet({ ...backend, path, agent: a, signal: AbortSignal.timeout(timeout) })

  const healthz: Record<HealthStyle, () => Promise<{ status: number; body: object }>> = {
    // Naive 1: the check is one more job for the pool, so it waits behind whatever the pool is doing.
    'through-pool': async () => {
      health.queued++
      const r = await pool.run(() => { health.started++; return callBackend('/ping', agent, WORK_TIMEOUT) })
      return { status: r.status === 200 ? 200 : 503, body: { status: r.status === 200 ? 'ok' : 'unhealthy' } }
    },
    // Naive 2: "the process answers, so it is healthy".
    shallow: async () => ({ status: 200, body: { status: 'ok' } }),
    // The fix: off the pool, a fresh connection to the backend, its own deadline well inside the checker's.
    fixed: async () => {
      try {
        const r = await httpGet({ ...backend, path: '/ping', agent: false, signal: AbortSignal.timeout(PROBE_TIMEOUT) })
        if (r.status === 200) return { status: 200, body: { status: 'ok', backend: 'ok' } }
        return { status: 503, body: { status: 'unhealthy', backend: `HTTP ${r.status}` } }
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        const why = e.name === 'AbortError' ? `no answer within ${PROBE_TIMEOUT} ms` : e.code ?? e.message
        return { status: 503, body: { status: 'unhealthy', backend: why } }
      }
    },
  }

  const server = http.createServer((req, res) => {
    const reply = (status: number, body: object) => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)) }
    if (req.url === '/version') return reply(200, { version: '1.0.0' })
    if (req.url === '/healthz') return void healthz[style]().then(h => reply(h.status, h.body), () => reply(503, { status: 'unhealthy' }))
    if (req.url === '/work') {
      return void pool.run(() => callBackend('/data', agent, WORK_TIMEOUT))
        .then(r => reply(r.status, { data: r.body }), () => reply(502, { error: 'backend' }))
    }
    reply(404, {})
  })
  const clients = new Set<net.Socket>()
  server.on('connection', s => { clients.add(s); s.on('close', () => clients.delete(s)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { pool.close(); agent.destroy(); for (const s of clients) s.destroy(); server.close() })
  const port = (server.address() as net.AddressInfo).port
  return { style, port, pool, health }
}

type Service = Awaited<ReturnType<typeof startService>>

// ── The health checker ────────────────────────────────────────────────────────────────────────────

type Check = { status: number; body: { status?: string; backend?: string }; ms: number } | { status: 'no answer'; ms: number }

/** One check as a load balancer or orchestrator makes it: GET /healthz, CHECK_TIMEOUT ms, new connection. */
async function check(service: Service): Promise<Check> {
  const start = performance.now()
  try {
    const r: Reply = await httpGet({ host: '127.0.0.1', port: service.port, path: '/healthz', agent: false, signal: AbortSignal.timeout(CHECK_TIMEOUT) })
    return { status: r.status, body: JSON.parse(r.body) as { status?: string; backend?: string }, ms: performance.now() - start }
  } catch {
    return { status: 'no answer', ms: performance.now() - start }
  }
}

/** Sends `n` /work requests without waiting for them (they end when the backend answers, or at teardown). */
function sendWork(service: Service, n: number): void {
  for (let i = 0; i < n; i++) httpGet({ host: '127.0.0.1', port: service.port, path: '/work', agent: false }).catch(() => {})
}

// ── The outage ────────────────────────────────────────────────────────────────────────────────────

t.test('the backend is cut while the service is busy', async t => {
  const backend = await httpBackend(t, (_req, res) => { res.end('ok') })
  const { coquin } = await withCoquin(t)
  const proxy = await coquin.proxy({ name: 'backend', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend.port}` })
  const origin = { host: '127.0.0.1', port: proxy.port }
  const services = {
    throughPool: await startService(t, 'through-pool', origin),
    shallow: await startService(t, 'shallow', origin),
    fixed: await startService(t, 'fixed', origin),
  }
  const all = Object.values(services)

  for (const s of all) t.match(await within(check(s), 5000, 'check'), { status: 200 }, `${s.style}: healthy before the cut`)

  const during = await proxy.withFault({ type: 'blackhole', stream: 'both' }, async () => {
    // Traffic keeps coming: 8 requests for each service, 4 running (stuck on the cut backend), 4 queued.
    for (const s of all) sendWork(s, 2 * WORKERS)
    await until(() => all.every(s => s.pool.active === WORKERS && s.pool.queued === WORKERS), 5000, 'the pools to fill')
    const [throughPool, shallow, fixed] = await Promise.all(all.map(s => within(check(s), 5000, 'check')))
    return { throughPool: throughPool!, shallow: shallow!, fixed: fixed! }
  })   // the cut heals: coquin forwards again; the 4 requests it swallowed on each pool stay lost
  const after = {
    throughPool: await within(check(services.throughPool), 5000, 'check'),
    fixed: await within(check(services.fixed), 5000, 'check'),
  }

  t.test('through the pool: fails for the wrong reason, and keeps failing after the backend is back', async t => {
    t.equal(during.throughPool.status, 'no answer', `no answer within the checker's ${CHECK_TIMEOUT} ms`)
    const { health, pool } = services.throughPool
    t.equal(health.queued, 3, 'three checks: before the cut, during it, after it')
    t.equal(health.started, 1, 'only the first ever reached the backend')
    t.equal(pool.queued, WORKERS + 2, `the other two wait in the pool's queue behind ${WORKERS} work requests`)
    t.match(await within(httpGet({ host: '127.0.0.1', port: services.throughPool.port, path: '/version', agent: false }), 5000, 'version'),
      { status: 200 }, 'while the process itself answers at once: a liveness probe would restart a healthy process')
    t.equal(after.throughPool.status, 'no answer', 'after the cut heals the check still fails: its pool is stuck on lost requests')
  })

  t.test('shallow: reports healthy while the backend is gone', async t => {
    t.match(during.shallow, { status: 200, body: { status: 'ok' } }, 'traffic keeps being sent to a service that cannot serve it')
  })

  t.test('fixed: reports the backend, within its own timeout, both ways', async t => {
    t.match(during.fixed, { status: 503, body: { status: 'unhealthy', backend: `no answer within ${PROBE_TIMEOUT} ms` } },
      'unhealthy during the cut, and says why')
    t.ok(during.fixed.ms >= PROBE_TIMEOUT && during.fixed.ms < CHECK_TIMEOUT,
      `answered after ${during.fixed.ms.toFixed(0)} ms: its own ${PROBE_TIMEOUT} ms deadline, inside the checker's ${CHECK_TIMEOUT} ms`)
    t.equal(services.fixed.pool.active, WORKERS, 'even with its work pool saturated')
    t.match(after.fixed, { status: 200, body: { status: 'ok', backend: 'ok' } }, 'healthy again at the first check after the cut heals')
  })
})
