// postgres-failover: two errors a PostgreSQL client must expect, injected per query by coquin in front of
// a real PostgreSQL (started here on loopback), on live pooled connections of node-postgres (`pg`):
//  - 40001 serialization_failure: under SERIALIZABLE (or a conflicting UPDATE) the server aborts one of
//    two transactions and expects the client to run it again. A transfer that does not retry is lost.
//  - 57P01 admin_shutdown, FATAL: a failover or restart terminates the pooled connections. The query that
//    was on one fails; the pool drops that connection; a retry of an idempotent query gets a new one.
import t, { type Test } from 'tap'
import pg from 'pg'
import type { PgQueryEvent } from '../../src/client/index.js'
import { postgresServer, postgresSkip, withCoquin } from '../support.js'

// ── The application ───────────────────────────────────────────────────────────────────────────────

type Transfer = (pool: pg.Pool, from: number, to: number, amount: number) => Promise<void>

/** As often written: one transaction; an error goes to the caller. */
const naiveTransfer: Transfer = async (pool, from, to, amount) => {
  const c = await pool.connect()
  try {
    await c.query('BEGIN ISOLATION LEVEL SERIALIZABLE')
    await c.query('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [amount, from])
    await c.query('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [amount, to])
    await c.query('COMMIT')
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    c.release()
  }
}

/** SQLSTATEs after which the whole transaction may be run again: nothing of it was committed. */
const RETRYABLE = new Set(['40001', '40P01'])

/** The fix: run the whole transaction again on 40001/40P01, a few times, with a short backoff. */
const retryingTransfer: Transfer = async (pool, from, to, amount) => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await naiveTransfer(pool, from, to, amount)
    } catch (err) {
      if (!RETRYABLE.has((err as { code?: string }).code ?? '') || attempt === 5) throw err
      await new Promise(r => setTimeout(r, 5 * attempt))
    }
  }
}

/** Connection-level failures: the server went away (57P01, 57P02, 57P03) or the link broke. */
const CONNECTION_LOST = new Set(['57P01', '57P02', '57P03', '08006', '08003'])

/** The fix for a failover: an idempotent read is retried once when its connection was lost. */
async function readWithRetry(pool: pg.Pool, sql: string): Promise<pg.QueryResult> {
  try {
    return await pool.query(sql)
  } catch (err) {
    const e = err as { code?: string; message: string }
    if (!CONNECTION_LOST.has(e.code ?? '') && !/Connection terminated/.test(e.message)) throw err
    return pool.query(sql)
  }
}

// ── The setup ─────────────────────────────────────────────────────────────────────────────────────

async function setup(t: Test) {
  const { port } = await postgresServer(t)
  const { coquin } = await withCoquin(t, { seed: 7 })   // seeded: the same transfers fail on every run
  const db = await coquin.create({ name: 'db', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: 'postgres' })
  const pool = new pg.Pool({ host: '127.0.0.1', port: db.port, user: 'postgres', database: 'postgres', max: 4 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  await pool.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)')
  await pool.query('INSERT INTO accounts VALUES (1, 100), (2, 0)')
  const balances = async () => (await pool.query('SELECT balance FROM accounts ORDER BY id')).rows.map(r => r.balance as number)
  return { db, pool, balances }
}

/** One in two debits is aborted by the server as a serialization failure. */
const contention = { name: 'contention', type: 'pg_error', toxicity: 0.5, attributes: { match: { query: 'balance - ' }, code: '40001' } } as const

t.test('40001: a serialization failure must be retried', { skip: postgresSkip }, async t => {
  t.test('naive: transfers fail and the money does not move', async t => {
    const { db, pool, balances } = await setup(t)
    await db.addFault(contention)
    const outcomes = []
    for (let i = 0; i < 10; i++) outcomes.push(await naiveTransfer(pool, 1, 2, 10).then(() => 'ok', (e: { code: string }) => e.code))
    const failed = outcomes.filter(o => o === '40001').length
    t.ok(failed > 0, `${failed} of 10 transfers failed with 40001`)
    t.same(await balances(), [100 - 10 * (10 - failed), 10 * (10 - failed)], 'only the others moved money: the failed ones are lost')
  })

  t.test('fixed: every transfer is retried until it commits, and money moves exactly once each', async t => {
    const { db, pool, balances } = await setup(t)
    await db.addFault(contention)
    for (let i = 0; i < 10; i++) await retryingTransfer(pool, 1, 2, 10)
    t.same(await balances(), [0, 100], 'all ten transfers committed, each once')
    const failures = (await db.events({ type: 'pg_query' })).filter(e => (e as PgQueryEvent).outcome === '40001').length
    t.ok(failures > 0, `after ${failures} serialization failures, retried`)
  })
})

t.test('57P01: a failover terminates pooled connections', { skip: postgresSkip }, async t => {
  const terminate = { name: 'failover', type: 'pg_error', attributes: { match: { statement: 'SELECT' }, count: 1, code: '57P01', severity: 'FATAL',
    message: 'terminating connection due to administrator command' } } as const

  t.test('naive: the query on the terminated connection fails', async t => {
    const { db, pool } = await setup(t)
    await db.addFault(terminate)
    await t.rejects(pool.query('SELECT count(*) FROM accounts'), { code: '57P01' }, 'the request fails with 57P01')
    t.equal((await pool.query('SELECT count(*)::int AS n FROM accounts')).rows[0].n, 2, 'the pool dropped that connection; the next query works')
  })

  t.test('fixed: an idempotent read is retried once on a new connection', async t => {
    const { db, pool } = await setup(t)
    await db.addFault(terminate)
    const res = await readWithRetry(pool, 'SELECT count(*)::int AS n FROM accounts')
    t.equal(res.rows[0].n, 2, 'the read succeeds')
    const closed = (await db.events({ type: 'link_close' })).filter(e => e.type === 'link_close' && e.reason === 'pg_error: FATAL 57P01')
    t.equal(closed.length, 1, 'after coquin terminated one connection, as the server would')
  })
})
