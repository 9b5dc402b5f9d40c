// postgres-pool: a real PostgreSQL (started here in a temp dir on loopback) behind a load balancer that
// forgets idle flows without telling anyone (coquin's `idle_reset` in `silent` mode), and `pg`'s Pool.
// The naive pool keeps the forgotten connection as idle and healthy, and its next query hangs. The fixed
// pool retires idle connections before the LB forgets them, and when one dies anyway (an LB with a
// shorter idle time than you were told) the query times out and is retried once on a fresh connection.
import t, { type Test } from 'tap'
import pg from 'pg'
import { startCoquin } from '../../src/index.js'
import { Coquin } from '../../src/client/index.js'
import { ManualClock, postgresServer, postgresSkip, until, within } from '../support.js'

/** The LB's idle time (ms): a flow with no byte either way for this long is forgotten. */
const LB_IDLE = 600
/** How long the naive query is given before we call it hung (ms). */
const HANG = 2000
/** The fixed pool's client-side deadline per query (ms). */
const QUERY_TIMEOUT = 500

// ── The pools ─────────────────────────────────────────────────────────────────────────────────────

/** As shipped: pg's defaults. Idle connections kept 10 s, no query deadline, no connect deadline. */
const NAIVE: pg.PoolConfig = {}

/** The fix. */
const FIXED: pg.PoolConfig = {
  idleTimeoutMillis: LB_IDLE / 2,          // retire an idle connection well before the LB forgets it
  query_timeout: QUERY_TIMEOUT,            // client side: no answer in 500 ms and the query fails (the pool drops that client)
  statement_timeout: QUERY_TIMEOUT - 100,  // server side: PostgreSQL cancels a slow query itself, first
  connectionTimeoutMillis: 1000,           // a connect (or a wait for a free connection) that takes longer fails
  keepAlive: true,                         // TCP keepalive: keeps the flow alive on LBs that count probes (see README)
  keepAliveInitialDelayMillis: 10_000,
}

function pool(t: Test, port: number, config: pg.PoolConfig) {
  const p = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: 4, ...config })
  const errors: string[] = []
  p.on('error', err => { errors.push(err.message) })   // an idle client that fails: without this, a crash
  t.teardown(() => within(p.end(), 5000, 'the pool to end'))
  return Object.assign(p, { errors })
}

/** The backend process that answered: a different pid means a different connection. */
async function backendPid(p: pg.Pool): Promise<number> {
  return (await p.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
}

/** A pooled connection the LB forgot: the query went out and nothing came back. */
function isDeadConnection(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException
  return e.message === 'Query read timeout' || e.message === 'Connection terminated unexpectedly' ||
    e.code === 'ECONNRESET' || e.code === 'EPIPE'
}

/**
 * A read is idempotent: when it fails on a dead connection (which the pool then drops, as pool.query
 * releases a failed client with its error), it is run once more, on a fresh connection.
 */
async function readWithRetry<R extends pg.QueryResultRow>(p: pg.Pool, sql: string) {
  try {
    return { result: await p.query<R>(sql), attempts: 1 }
  } catch (err) {
    if (!isDeadConnection(err)) throw err
    return { result: await p.query<R>(sql), attempts: 2, first: err as Error }
  }
}

// ── The servers ───────────────────────────────────────────────────────────────────────────────────

const skip = postgresSkip

/**
 * PostgreSQL behind an "LB": a coquin proxy whose `idle_reset` (silent) forgets flows idle for `idle` ms,
 * on the real clock or on `clock` (then the LB's idle time passes when the test advances it).
 */
async function behindLb(t: Test, port: number, idle: number, clock?: ManualClock) {
  const server = await startCoquin({ port: 0, ...(clock ? { clock } : {}) })
  t.teardown(() => server.close())
  const coquin = new Coquin(server.url)
  const lb = await coquin.create({
    name: 'lb', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`,
    toxics: [{ name: 'lb-idle', type: 'idle_reset', stream: 'both', attributes: { idle, mode: 'silent' } }],
  })
  /** coquin's open links through the LB, each with its state (`open`, `silenced`). */
  const links = () => [...server.registry.get('lb').links]
  return { lb, links }
}

// ── The outage ────────────────────────────────────────────────────────────────────────────────────

t.test(`PostgreSQL behind an LB that silently forgets flows idle for ${LB_IDLE} ms`, { skip }, async t => {
  const { port } = await postgresServer(t)

  t.test('naive: the pool hands out the forgotten connection and the query hangs', async t => {
    const { lb, links } = await behindLb(t, port, LB_IDLE)
    const p = pool(t, lb.port, NAIVE)
    const pid = await within(backendPid(p), 5000, 'the first query')
    t.ok(pid > 0, 'the first query works')
    t.equal(p.totalCount, 1, 'on one connection, now idle in the pool')

    await until(() => links()[0]?.state === 'silenced', 5000, 'the LB to forget the flow')
    t.pass(`after ${LB_IDLE} ms idle the LB forgot the flow, and told neither side`)
    t.same([p.totalCount, p.idleCount], [1, 1], 'the pool still holds the connection as idle and healthy')

    const query = backendPid(p)
    const outcome = await within(query, HANG, 'the second query').then(() => 'answered', (err: Error) => err.message)
    t.equal(outcome, `timed out after ${HANG}ms waiting for the second query`, `the next query has no answer after ${HANG} ms: it hangs`)
    t.same([p.totalCount, p.idleCount, p.errors], [1, 0, []], 'its connection checked out, no error anywhere')

    // Over a real network it waits until TCP keepalive or retransmission gives up (minutes to hours).
    // Clean up: the LB closes the flow, and only then does the query end.
    await lb.disable()
    const err = await within(query, 5000, 'the query to end').then(() => undefined, (e: Error) => e)
    t.match(err, { message: 'Connection terminated unexpectedly' }, 'it ends only when something else closes the connection')
  })

  t.test('fixed: the pool retires idle connections before the LB forgets them', async t => {
    const { lb, links } = await behindLb(t, port, LB_IDLE)
    const p = pool(t, lb.port, FIXED)
    const first = await within(backendPid(p), 5000, 'the first query')
    t.ok(first > 0, 'the first query works')
    t.equal(p.totalCount, 1, 'on one connection, idle in the pool')

    await until(() => p.totalCount === 0, 5000, 'the pool to retire the idle connection')
    t.pass(`the pool closed it after ${FIXED.idleTimeoutMillis} ms idle`)
    await until(() => links().length === 0, 5000, 'the LB to see the connection end')
    t.pass('before the LB\'s idle time: there is nothing for the LB to forget')

    await new Promise(r => setTimeout(r, LB_IDLE))   // the LB's idle time passes
    const second = await within(backendPid(p), 5000, 'the next query')
    t.not(second, first, 'the next query works, on a fresh connection')
    t.same(links().map(l => l.state), ['open'], 'through a live link')
  })

  t.test(`fixed: an LB with a shorter idle time (${LB_IDLE / 4} ms) forgets a pooled connection; the read is retried`, async t => {
    // coquin on a manual clock: the LB's idle time passes when the test says, so the LB forgets the
    // connection while it is still in the pool, whatever the machine's load does to real timers.
    const clock = new ManualClock()
    const { lb, links } = await behindLb(t, port, LB_IDLE / 4, clock)
    const p = pool(t, lb.port, FIXED)
    const first = await within(backendPid(p), 5000, 'the first query')
    t.ok(first > 0, 'the first query works')

    clock.advance(LB_IDLE / 4)
    t.same(links().map(l => l.state), ['silenced'], `the LB forgot the flow after ${LB_IDLE / 4} ms idle`)
    t.same([p.totalCount, p.idleCount], [1, 1], `while the pool, whose idle timeout is ${FIXED.idleTimeoutMillis} ms, still holds it`)

    const start = performance.now()
    const { result, attempts, first: firstError } = await within(readWithRetry<{ pid: number }>(p, 'SELECT pg_backend_pid() AS pid'), 5000, 'the read')
    const ms = performance.now() - start
    t.equal(attempts, 2, 'the read succeeds on the second attempt')
    t.match(firstError, { message: 'Query read timeout' }, 'the first failed at the query timeout')
    t.ok(ms >= QUERY_TIMEOUT - 5 && ms < QUERY_TIMEOUT + 1000, `in ${Math.round(ms)} ms in all: the query timeout, then one fresh round trip`)
    t.not(result.rows[0]!.pid, first, 'on a fresh connection')
    await until(() => links().every(l => l.state !== 'silenced'), 5000, 'the dead connection to be closed')
    t.same([p.totalCount, links().length], [1, 1], 'the pool dropped the dead connection: one live connection left')
    t.same(p.errors, [], 'and the pool reported no error')
  })
})
