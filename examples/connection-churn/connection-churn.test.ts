// connection-churn: a client that opens a new connection for every request, under load, vs a pooled
// one. coquin's metrics count the connections each one opens; a slow backend and a burst of requests
// make the naive one run out of file descriptors (EMFILE) while the pool holds a flat count.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { httpBackend, metric, until, within, withCoquin } from '../support.js'

/** Connections the pooled client may hold. */
const POOL = 10
/** Requests in the steady run, and how many are in flight at once. */
const REQUESTS = 200
const CONCURRENCY = POOL
/**
 * The descriptor budget: how many sockets the client process may have open at once. A stand-in for
 * `ulimit -n` (a test cannot lower its own limit without starving the runner). CHURN_FD_LIMIT=os
 * removes it, and the real limit applies: see the README's "try it yourself".
 */
const FD_LIMIT = process.env.CHURN_FD_LIMIT === 'os' ? Infinity : Number(process.env.CHURN_FD_LIMIT ?? 64)
/** Requests in the burst: a fan-out, a retry storm, a traffic spike. */
const BURST = Number(process.env.CHURN_BURST ?? 200)
/** How slow the backend gets during the burst (ms added to each response by coquin). */
const SLOW = 50

// ── File descriptors ─────────────────────────────────────────────────────────────────────────────

/**
 * Every socket the client opens goes through connect(): at most `limit` open at once, and one more
 * fails as connect() fails in a process out of descriptors — `EMFILE`, on the request's 'error'.
 */
class FdBudget {
  open = 0
  peak = 0
  constructor(readonly limit: number) {}
  readonly connect = (opts: net.NetConnectOpts): net.Socket => {
    if (this.open >= this.limit) {
      const s = new net.Socket()
      const err = Object.assign(new Error('connect EMFILE: too many open files (descriptor budget)'),
        { code: 'EMFILE', errno: -24, syscall: 'connect' })
      process.nextTick(() => s.destroy(err))
      return s
    }
    const s = net.createConnection(opts)
    this.open++
    this.peak = Math.max(this.peak, this.open)
    s.once('close', () => { this.open-- })
    return s
  }
}

// ── The clients ──────────────────────────────────────────────────────────────────────────────────

interface Origin { host: string; port: number }

function get(opts: http.RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ ...opts, path: '/item' }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

/**
 * As shipped: no agent, so every request opens its own connection and closes it (`Connection: close`).
 * (`agent: false` does the same; createConnection, used here to count descriptors, replaces the agent.)
 */
function naiveClient(origin: Origin, fds: FdBudget) {
  return () => get({ ...origin, createConnection: o => fds.connect(o as net.NetConnectOpts) })
}

/** The fix: one keep-alive pool of POOL connections; requests beyond that wait for a free one. */
function pooledClient(t: Test, origin: Origin, fds: FdBudget) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: POOL })
  agent.createConnection = o => fds.connect(o as net.NetConnectOpts)
  t.teardown(() => agent.destroy())
  return () => get({ ...origin, agent })
}

/** `n` calls, `concurrency` at a time. */
async function steady(n: number, concurrency: number, call: () => Promise<number>): Promise<number[]> {
  const statuses: number[] = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) { next++; statuses.push(await call()) }
  }))
  return statuses
}

// ── The outage ───────────────────────────────────────────────────────────────────────────────────

async function setup(t: Test) {
  const backend = await httpBackend(t)
  const { server, coquin } = await withCoquin(t)
  const upstream = `127.0.0.1:${backend.port}`
  const naive = await coquin.proxy({ name: 'naive', listen: '127.0.0.1:0', upstream })
  const pooled = await coquin.proxy({ name: 'pooled', listen: '127.0.0.1:0', upstream })
  const opened = (proxy: string) => metric(server.url, 'coquin_links_opened_total', { proxy })
  return { backend, server, naive, pooled, opened }
}

t.test(`steady load: ${REQUESTS} requests, ${CONCURRENCY} at a time`, async t => {
  const { naive, pooled, opened } = await setup(t)

  t.test('naive: one connection per request', async t => {
    const fds = new FdBudget(Infinity)
    const statuses = await within(steady(REQUESTS, CONCURRENCY, naiveClient({ host: '127.0.0.1', port: naive.port }, fds)), 10_000, 'naive run')
    t.ok(statuses.every(s => s === 200), 'every request works')
    t.equal(await opened('naive'), REQUESTS, `coquin counted ${REQUESTS} connections: the churn`)
  })

  t.test('pooled: the connection count stays flat', async t => {
    const fds = new FdBudget(Infinity)
    const statuses = await within(steady(REQUESTS, CONCURRENCY, pooledClient(t, { host: '127.0.0.1', port: pooled.port }, fds)), 10_000, 'pooled run')
    t.ok(statuses.every(s => s === 200), 'every request works')
    const n = await opened('pooled')
    t.ok(n >= 1 && n <= POOL, `coquin counted ${n} connections, at most the pool size (${POOL})`)
    t.ok(fds.peak <= POOL, `peak open sockets ${fds.peak}`)
  })
})

const budget = Number.isFinite(FD_LIMIT) ? `a budget of ${FD_LIMIT} descriptors` : 'the OS descriptor limit (ulimit -n)'

t.test(`slow backend (+${SLOW} ms), a burst of ${BURST} requests, ${budget}`, async t => {
  const { naive, pooled, opened } = await setup(t)
  const slow = { type: 'latency', stream: 'downstream', attributes: { latency: SLOW } } as const

  t.test('naive: runs out of descriptors', async t => {
    const fds = new FdBudget(FD_LIMIT)
    const call = naiveClient({ host: '127.0.0.1', port: naive.port }, fds)
    const results = await naive.withFault(slow, () =>
      within(Promise.allSettled(Array.from({ length: BURST }, call)), 30_000, 'naive burst'))
    const ok = results.filter(r => r.status === 'fulfilled').length
    const codes = results.flatMap(r => r.status === 'rejected' ? [(r.reason as NodeJS.ErrnoException).code] : [])
    const emfile = codes.filter(c => c === 'EMFILE').length
    t.ok(emfile > 0, `${emfile} of ${BURST} requests failed with EMFILE`)
    if (Number.isFinite(FD_LIMIT)) {
      t.equal(ok, FD_LIMIT, 'only as many requests as there were descriptors got through')
      t.equal(emfile, BURST - FD_LIMIT, 'every other one failed with EMFILE')
      t.equal(await opened('naive'), FD_LIMIT, 'coquin saw one connection per request that got a descriptor')
    }
    await until(() => fds.open === 0, 10_000, 'the naive sockets to close')
  })

  t.test('pooled: every request gets through on at most POOL connections', async t => {
    const fds = new FdBudget(FD_LIMIT)
    const call = pooledClient(t, { host: '127.0.0.1', port: pooled.port }, fds)
    const results = await pooled.withFault(slow, () =>
      within(Promise.allSettled(Array.from({ length: BURST }, call)), 30_000, 'pooled burst'))
    t.same(results.filter(r => r.status === 'rejected').map(r => (r as PromiseRejectedResult).reason), [], 'no request failed')
    t.ok(fds.peak <= POOL, `peak open sockets ${fds.peak} ≤ ${POOL}`)
    const n = await opened('pooled')
    t.ok(n >= 1 && n <= POOL, `coquin counted ${n} connections, at most the pool size`)
  })
})
