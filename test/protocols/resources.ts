// Redis and PostgreSQL modes leak nothing: after clients that met every kind of fault (answered, delayed,
// reset, closed, hung) go away, descriptors, sockets and timers are back to where they were.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import pg from 'pg'
import { startCoquin } from '../../src/index.js'
import { Coquin, type FaultActedEvent, type Protocol } from '../../src/client/index.js'
import { postgresServer, postgresSkip, redisServer, redisSkip } from '../helpers/servers.js'
import { baseline } from '../helpers/faults.js'

/** An embedded coquin with one proxy of this protocol in front of the server on `port`. */
async function proxyTo(t: Test, port: number, protocol: Protocol) {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  return new Coquin(server.url).create({ name: protocol, listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol })
}

/** The names of the faults that acted, so that a fault that never fired cannot pass for one that leaked nothing. */
async function actedFaults(p: Awaited<ReturnType<typeof proxyTo>>): Promise<string[]> {
  return [...new Set((await p.events({ type: 'fault_acted' }) as FaultActedEvent[]).map(e => e.fault))].sort()
}

t.test('redis: every fault, then back to baseline', { skip: redisSkip }, async t => {
  const p = await proxyTo(t, (await redisServer(t)).port, 'redis')
  await p.addFault({ name: 'e', type: 'redis_error', attributes: { match: { key: 'err:*' } } })
  await p.addFault({ name: 'd', type: 'redis_delay', attributes: { match: { key: 'slow:*' }, delay: 20, phase: 'reply' } })
  await p.addFault({ name: 'a', type: 'redis_abort', attributes: { match: { key: 'rst:*' }, mode: 'rst' } })
  await p.addFault({ name: 'h', type: 'redis_abort', attributes: { match: { key: 'hang:*' }, mode: 'hang' } })
  const check = await baseline(t)
  for (const key of ['ok:1', 'err:1', 'slow:1', 'rst:1', 'hang:1']) {
    const r = new Redis({ host: '127.0.0.1', port: p.port, maxRetriesPerRequest: 0, commandTimeout: 200, retryStrategy: () => null })
    r.on('error', () => {})
    await r.get(key).catch(() => {})
    r.disconnect()
  }
  await p.waitForEvents({ type: 'link_close' }, e => e.length >= 5)
  t.same(await actedFaults(p), ['a', 'd', 'e', 'h'], 'every fault acted')
  await check()
})

t.test('postgres: every fault, then back to baseline', { skip: postgresSkip }, async t => {
  const p = await proxyTo(t, (await postgresServer(t)).port, 'postgres')
  await p.addFault({ name: 'e', type: 'pg_error', attributes: { match: { query: 'err' } } })
  await p.addFault({ name: 'f', type: 'pg_error', attributes: { match: { query: 'fatal' }, severity: 'FATAL', code: '57P01' } })
  await p.addFault({ name: 'd', type: 'pg_delay', attributes: { match: { query: 'slow' }, delay: 20 } })
  await p.addFault({ name: 'a', type: 'pg_abort', attributes: { match: { query: 'rst' }, mode: 'rst' } })
  await p.addFault({ name: 'h', type: 'pg_abort', attributes: { match: { query: 'hang' }, mode: 'hang' } })
  const check = await baseline(t)
  for (const word of ['ok', 'err', 'fatal', 'slow', 'rst', 'hang']) {
    const c = new pg.Client({ host: '127.0.0.1', port: p.port, user: 'postgres', database: 'postgres', query_timeout: 300 })
    c.on('error', () => {})
    await c.connect()
    await c.query(`SELECT '${word}'`).catch(() => {})
    await c.end().catch(() => {})
  }
  await p.waitForEvents({ type: 'link_close' }, e => e.length >= 6)
  t.same(await actedFaults(p), ['a', 'd', 'e', 'f', 'h'], 'every fault acted')
  await check()
})
