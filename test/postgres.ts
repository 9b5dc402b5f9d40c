// PostgreSQL mode end to end: a real PostgreSQL (Debian's, started here on a free loopback port) behind a
// `protocol: postgres` proxy, real clients (node-postgres' Client and Pool, psql).
import t, { type Test } from 'tap'
import net from 'node:net'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { once } from 'node:events'
import pg from 'pg'
import { createRequire } from 'node:module'
import { startCoquin } from '../src/index.js'
import { Coquin, type JournalEvent, type PgQueryEvent } from '../src/client/index.js'
import { findExecutable, pgBinDirs, postgresServer, postgresSkip } from './helpers/servers.js'
import { until, within } from './helpers/net.js'

const PSQL = findExecutable('psql', pgBinDirs())
const exec = promisify(execFile)

async function setup(t: Test, opts: { auth?: 'trust' | 'scram' } = {}) {
  const { port } = await postgresServer(t, opts)
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const coquin = new Coquin(server.url)
  const proxy = await coquin.create({ name: 'db', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: 'postgres' })
  const config = { host: '127.0.0.1', port: proxy.port, user: 'postgres', database: 'postgres', ...(opts.auth === 'scram' ? { password: 'secret' } : {}) }
  const clients: pg.Client[] = []
  const client = async () => {
    const c = new pg.Client(config)
    c.on('error', () => {})
    clients.push(c)
    await c.connect()
    return c
  }
  const pools: pg.Pool[] = []
  const pool = (extra: pg.PoolConfig = {}) => {
    const p = new pg.Pool({ ...config, max: 1, ...extra })
    p.on('error', () => {})
    pools.push(p)
    return p
  }
  t.teardown(async () => {
    for (const c of clients) await c.end().catch(() => {})
    for (const p of pools) await p.end().catch(() => {})
  })
  const direct = new pg.Client({ ...config, port })
  await direct.connect()
  t.teardown(() => direct.end())
  await direct.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)')
  await direct.query('INSERT INTO accounts VALUES (1, 100), (2, 50)')
  return { server, coquin, proxy, client, pool, direct, pgPort: port }
}

const queries = (events: JournalEvent[]) => events.filter((e): e is PgQueryEvent => e.type === 'pg_query')
const balance = async (c: pg.Client, id: number) => (await c.query('SELECT balance FROM accounts WHERE id = $1', [id])).rows[0].balance as number

t.test('postgres mode', { skip: postgresSkip }, async t => {
  t.test('pg_error 40001 on UPDATE accounts reaches pg as that error; other queries pass on the same pooled connection', async t => {
    const { proxy, pool, direct } = await setup(t)
    const p = await pool().connect()              // one connection from the pool (Pool.query drops a connection on any error)
    t.teardown(() => p.release())
    await proxy.addFault({ name: 'serial', type: 'pg_error', attributes: { match: { query: '/^update accounts/i' } } })
    const pid = (await p.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
    await t.rejects(p.query('UPDATE accounts SET balance = balance - 10 WHERE id = 1'),
      { code: '40001', message: 'could not serialize access due to concurrent update' }, 'simple protocol: 40001')
    await t.rejects(p.query('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [10, 1]), { code: '40001' }, 'extended protocol (parameters): 40001')
    await t.rejects(p.query({ name: 'debit', text: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', values: [10, 1] }), { code: '40001' },
      'a named prepared statement: 40001')
    await t.rejects(p.query({ name: 'debit', text: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2', values: [10, 1] }), { code: '40001' },
      'executed again (Bind/Execute only, matched on the SQL of its Parse): 40001')
    t.equal((await p.query('SELECT balance FROM accounts WHERE id = $1', [1])).rows[0].balance, 100, 'a SELECT passes')
    t.equal((await p.query('SELECT pg_backend_pid() AS pid')).rows[0].pid, pid, 'all on the one pooled connection')
    t.equal(await balance(direct, 1), 100, 'no UPDATE reached the server')
    await p.query('UPDATE accounts SET balance = 99 WHERE id = 2 /* not matched: the regex wants it first */'.replace('UPDATE', 'update'))
      .then(() => t.fail('should match: the regex ignores case'), e => t.equal(e.code, '40001', 'the regex ignores case with /…/i'))
    await proxy.updateFault('serial', { attributes: { match: { statement: 'update' }, code: '25006', message: 'cannot execute UPDATE in a read-only transaction' } })
    await t.rejects(p.query('UPDATE accounts SET balance = 0'), { code: '25006' }, 'match.statement, another code')
  })

  t.test('a transaction the client saw fail is not committed', async t => {
    const { proxy, client, direct } = await setup(t)
    const c = await client()
    await proxy.addFault({ name: 'serial', type: 'pg_error', attributes: { match: { query: 'id = 2' } } })
    await c.query('BEGIN')
    await c.query('UPDATE accounts SET balance = 0 WHERE id = 1')
    await t.rejects(c.query('UPDATE accounts SET balance = 0 WHERE id = 2'), { code: '40001' })
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, 'then, as in PostgreSQL, other statements are refused until the transaction ends')
    await t.rejects(c.query('SELECT $1::int', [1]), { code: '25P02' }, 'in the extended protocol too')
    const commit = await c.query('COMMIT')
    t.equal(commit.command, 'ROLLBACK', 'COMMIT of a failed transaction answers ROLLBACK, as PostgreSQL does')
    t.equal(await balance(direct, 1), 100, 'the first UPDATE was rolled back')
    t.equal(await balance(c, 1), 100, 'and the connection carries on')
  })

  t.test('57P01 FATAL: pg\'s Pool discards the connection and the next query gets a new one', async t => {
    const { coquin, proxy, pool } = await setup(t)
    const p = pool()
    const pid = (await p.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
    await proxy.addFault({ name: 'failover', type: 'pg_error', attributes: { match: { statement: 'SELECT' }, code: '57P01', severity: 'FATAL',
      message: 'terminating connection due to administrator command', count: 1 } })
    const c = await p.connect()
    c.on('error', () => {})                       // pg reports the closed connection as an error on the client too
    const ended = new Promise<void>(resolve => c.once('end', () => resolve()))
    await t.rejects(c.query('SELECT 1'), { code: '57P01', severity: 'FATAL' }, 'the query fails with 57P01')
    await within(ended, 5000, 'the connection to end')
    t.pass('then the server side closed the connection')
    c.release()
    t.equal(p.totalCount, 0, 'the pool removed the connection (it is no longer queryable)')
    const next = (await p.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
    t.not(next, pid, 'the next query runs on a new connection')
    const closed = (await coquin.events({ type: 'link_close' })).filter(e => e.type === 'link_close')
    t.match(closed, [{ reason: 'pg_error: FATAL 57P01' }], 'coquin closed the link after the error')
  })

  t.test('pg_delay, measured', async t => {
    const { proxy, client } = await setup(t)
    const c = await client()
    const time = async (sql: string) => { const t0 = performance.now(); await c.query(sql); return performance.now() - t0 }
    await time('SELECT 1')
    await proxy.addFault({ name: 'slow', type: 'pg_delay', attributes: { match: { query: 'pg_sleep|accounts' }, delay: 200 } })
    const slow = await time('SELECT * FROM accounts')
    const fast = await time('SELECT 2')
    t.ok(slow >= 195 && slow < 600, `a matching query takes 200 ms more (${slow.toFixed(1)} ms)`)
    t.ok(fast < 150, `another does not (${fast.toFixed(1)} ms)`)
  })

  t.test('pg_abort: rst, fin and hang', async t => {
    const { coquin, proxy, client } = await setup(t)
    await proxy.addFault({ name: 'cut', type: 'pg_abort', attributes: { match: { statement: 'DELETE' }, mode: 'rst' } })
    const c1 = await client()
    await t.rejects(c1.query('DELETE FROM accounts'), 'rst: the query fails')
    await proxy.updateFault('cut', { attributes: { match: { statement: 'DELETE' }, mode: 'fin' } })
    const c2 = await client()
    await t.rejects(c2.query('DELETE FROM accounts'), { message: /Connection terminated/ }, 'fin: the connection ends')
    await proxy.updateFault('cut', { attributes: { match: { statement: 'DELETE' }, mode: 'hang' } })
    const c3 = await client()
    const outcome = await within(c3.query('DELETE FROM accounts'), 300, 'the query').then(() => 'answered', (e: Error) => e.message)
    t.equal(outcome, 'timed out after 300ms waiting for the query', 'hang: no answer')
    t.match(await proxy.links(), [{ state: 'silenced' }], 'and the connection is still open')
    const closed = (await coquin.events({ type: 'link_close' })).map(e => e.type === 'link_close' ? e.reason : '')
    t.ok(closed.includes('pg_abort: rst') && closed.includes('pg_abort: fin'), 'the links closed as the modes say')
  })

  t.test('psql works through the proxy (its SSLRequest is answered N), COPY and LISTEN/NOTIFY pass', { skip: PSQL ? false : 'psql not installed' }, async t => {
    const { proxy, client } = await setup(t)
    const env = { ...process.env, PGCONNECT_TIMEOUT: '10' }
    const out = await exec(PSQL!, ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres', '-d', 'postgres', '-At', '-c', 'SELECT sum(balance) FROM accounts'], { env, timeout: 20_000 })
    t.equal(out.stdout.trim(), '150', 'psql (sslmode=prefer) runs a query')
    const copy = execFile(PSQL!, ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres', '-At', '-c', 'COPY accounts FROM STDIN'], { env, timeout: 20_000 })
    copy.stdin!.end('3\t7\n4\t8\n')
    const [code] = await once(copy, 'exit')
    t.equal(code, 0, 'COPY FROM STDIN')
    const copied = await exec(PSQL!, ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres', '-At', '-c', 'COPY (SELECT id FROM accounts ORDER BY id) TO STDOUT'], { env, timeout: 20_000 })
    t.equal(copied.stdout, '1\n2\n3\n4\n', 'COPY TO STDOUT')
    const listener = await client()
    await listener.query('LISTEN news')
    const got = once(listener, 'notification')
    const talker = await client()
    await talker.query(`NOTIFY news, 'hello'`)
    const [n] = await within(got, 5000, 'the notification')
    t.match(n, { channel: 'news', payload: 'hello' }, 'a notification reaches the listener')
  })

  t.test('SCRAM authentication passes through untouched', async t => {
    const { client } = await setup(t, { auth: 'scram' })
    const c = await client()
    t.equal((await c.query('SELECT current_user AS u')).rows[0].u, 'postgres', 'a SCRAM login through coquin')
  })

  t.test('toxicity, after and count count matching queries', async t => {
    const { proxy, client } = await setup(t)
    const c = await client()
    await proxy.addFault({ name: 'some', type: 'pg_error', attributes: { match: { statement: 'SELECT' }, after: 1, count: 2 } })
    const outcomes: string[] = []
    for (let i = 0; i < 5; i++) outcomes.push(await c.query('SELECT 1').then(() => 'ok', (e: { code: string }) => e.code))
    t.same(outcomes, ['ok', '40001', '40001', 'ok', 'ok'])
  })

  t.test('the journal and metrics: pg_query events and coquin_pg_queries_total', async t => {
    const { server, proxy, client } = await setup(t)
    const c = await client()
    await proxy.addFault({ name: 'serial', type: 'pg_error', attributes: { match: { statement: 'UPDATE' } } })
    await c.query('SELECT balance FROM accounts WHERE id = $1', [1])
    await t.rejects(c.query('UPDATE accounts SET balance = 1'))
    await t.rejects(c.query('SELECT nope'), { code: '42703' })
    const events = queries(await proxy.waitForEvents({ type: 'pg_query' }, e => queries(e).length >= 3))
    t.match(events, [
      { statement: 'SELECT', query: 'SELECT balance FROM accounts WHERE id = $1', database: 'postgres', user: 'postgres', outcome: 'ok', source: 'upstream' },
      { statement: 'UPDATE', outcome: '40001', source: 'coquin', faults: ['serial'] },
      { statement: 'SELECT', outcome: '42703', source: 'upstream' },
    ])
    const text = await fetch(`${server.url}/metrics`).then(res => res.text())
    t.match(text, /coquin_pg_queries_total\{proxy="db",outcome="40001",source="coquin"\} 1/)
    t.match(text, /coquin_pg_queries_total\{proxy="db",outcome="42703",source="upstream"\} 1/)
  })

  t.test('what is not PostgreSQL falls back to TCP, recorded once', async t => {
    const { proxy } = await setup(t)
    const s = net.connect(proxy.port, '127.0.0.1')
    t.teardown(() => s.destroy())
    await once(s, 'connect')
    s.write('GET / HTTP/1.1\r\n\r\n')
    const events = await proxy.waitForEvents({ type: 'protocol_fallback' }, e => e.length > 0)
    t.match(events, [{ protocol: 'postgres', stream: 'upstream' }])
  })
})

t.test('postgres mode, on the wire: a pipelined batch with one Execute answered by coquin stays in step', { skip: postgresSkip }, async t => {
  // node-postgres' own wire library (its CommonJS build: the ESM one cannot load under tap's loader)
  const { serialize, parse } = createRequire(import.meta.url)('pg-protocol') as typeof import('pg-protocol')
  const { proxy } = await setup(t)
  await proxy.addFault({ name: 'serial', type: 'pg_error', attributes: { match: { query: 'balance - ' } } })
  const s = net.connect(proxy.port, '127.0.0.1')
  t.teardown(() => s.destroy())
  await once(s, 'connect')
  const seen: string[] = []
  let readyCount = 0
  const waiters: [number, () => void][] = []
  /** Resolves once n ReadyForQuery have arrived since the connection began. */
  const readyAt = (n: number) => new Promise<void>(resolve => { if (readyCount >= n) resolve(); else waiters.push([n, resolve]) })
  void parse(s, msg => {
    const m = msg as { name: string; code?: string; status?: string; text?: string }
    seen.push(m.name === 'error' ? `error ${m.code}` : m.name === 'readyForQuery' ? `ready ${m.status}` : m.name === 'commandComplete' ? `complete ${m.text}` : m.name)
    if (m.name === 'readyForQuery') { readyCount++; for (const [n, resolve] of waiters) if (readyCount >= n) resolve() }
  })
  s.write(serialize.startup({ user: 'postgres', database: 'postgres' }))
  await within(readyAt(1), 5000, 'the login')
  seen.length = 0
  // three statements, each Parse/Bind/Execute/Sync, sent in one write; the second one is answered by coquin
  const batch = (sql: string) => Buffer.concat([serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({}), serialize.sync()])
  s.write(Buffer.concat([
    batch('SELECT 1'), batch('UPDATE accounts SET balance = balance - 1 WHERE id = 1'), batch('UPDATE accounts SET balance = balance + 1 WHERE id = 2'),
  ]))
  await within(readyAt(4), 5000, 'three ReadyForQuery')
  t.same(seen, [
    'parseComplete', 'bindComplete', 'dataRow', 'complete SELECT 1', 'ready I',
    'parseComplete', 'bindComplete', 'error 40001', 'ready I',
    'parseComplete', 'bindComplete', 'complete UPDATE 1', 'ready I',
  ], 'every answer in its place: the server answers Parse and Bind, coquin the Execute, the server the Sync')
})
