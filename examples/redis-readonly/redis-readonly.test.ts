// redis-readonly: a failover where the old primary comes back as a replica. A real Redis (redis-server,
// started here on loopback) sits behind two coquin proxies: `old`, the address the application was given
// (the old primary, now demoted: coquin answers its writes `READONLY`, command by command, on the live
// pooled connection) and `new`, the promoted primary. Reads still work on `old`, and so does PING: a
// health check that pings sees nothing wrong while every write fails.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { ProxyHandle, RedisCommandEvent } from '../../src/client/index.js'
import { redisServer, redisSkip, withCoquin } from '../support.js'

const READONLY = "READONLY You can't write against a read only replica."
const WRITES = ['SET', 'DEL', 'INCR', 'HSET', 'EXPIRE', 'LPUSH']

// ── The clients ───────────────────────────────────────────────────────────────────────────────────

/** As often written: one connection to the address in the config, errors passed to the caller. */
class NaiveStore {
  readonly redis: Redis
  constructor(port: number) { this.redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 }) }
  save(key: string, value: string) { return this.redis.set(key, value) }
  healthy() { return this.redis.ping().then(r => r === 'PONG') }
}

/**
 * The fix: a READONLY reply means "this node is not the primary any more". Ask discovery (Sentinel,
 * the cloud API, DNS) for the primary, move the connection there, and retry the write once; health is
 * a write, not a PING.
 */
class FailoverAwareStore {
  redis: Redis
  moves = 0
  constructor(port: number, readonly discover: () => Promise<number>) { this.redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 }) }
  async save(key: string, value: string): Promise<string> {
    try {
      return await this.redis.set(key, value)
    } catch (err) {
      if (!(err as Error).message.startsWith('READONLY')) throw err
      const port = await this.discover()
      this.redis.disconnect()
      this.redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 })
      this.moves++
      return this.redis.set(key, value)
    }
  }
  healthy() { return this.redis.set('health:probe', String(Date.now())).then(() => true, () => false) }
}

// ── The outage ────────────────────────────────────────────────────────────────────────────────────

async function setup(t: Test) {
  const { port } = await redisServer(t)
  const { coquin } = await withCoquin(t)
  const old = await coquin.create({ name: 'old', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: 'redis' })
  const promoted = await coquin.create({ name: 'new', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: 'redis' })
  /** The failover: the old primary is demoted, every write to it is answered READONLY. */
  const failover = () => old.addFault({ name: 'demoted', type: 'redis_error', attributes: { match: { command: WRITES }, error: READONLY } })
  let primary = old.port
  const discover = async () => primary
  return { coquin, old, promoted, failover, discover, promote: () => { primary = promoted.port } }
}

const readonlyCount = async (p: ProxyHandle) =>
  (await p.events({ type: 'redis_command' })).filter(e => (e as RedisCommandEvent).outcome === 'READONLY').length

t.test('after a failover the old primary answers writes with READONLY', { skip: redisSkip }, async t => {
  t.test('naive: every write fails on the pooled connection, and the PING health check says healthy', async t => {
    const { old, failover, promote } = await setup(t)
    const store = new NaiveStore(old.port)
    t.teardown(() => store.redis.disconnect())
    t.equal(await store.save('cart:1', 'apples'), 'OK', 'before the failover a write works')
    await failover()
    promote()
    const results = await Promise.all([1, 2, 3, 4, 5].map(i => store.save(`cart:${i}`, 'pears').then(() => 'ok', (e: Error) => e.message)))
    t.same(results, Array(5).fill(READONLY), 'after it, every write fails with READONLY')
    t.equal(await store.healthy(), true, 'yet PING answers PONG: the health check sees nothing wrong')
    t.equal(await store.redis.get('cart:1'), 'apples', 'and reads still work, so the outage is partial and quiet')
    t.equal(await readonlyCount(old), 5, 'coquin\'s journal counts the five READONLY answers')
  })

  t.test('fixed: READONLY moves the client to the new primary and the write is retried once', async t => {
    const { old, promoted, failover, promote, discover } = await setup(t)
    const store = new FailoverAwareStore(old.port, discover)
    t.teardown(() => store.redis.disconnect())
    t.equal(await store.save('cart:1', 'apples'), 'OK')
    await failover()
    promote()
    for (let i = 1; i <= 5; i++) t.equal(await store.save(`cart:${i}`, 'pears'), 'OK', `write ${i} succeeds`)
    t.equal(store.moves, 1, 'the client moved once, on the first READONLY')
    t.equal(await readonlyCount(old), 1, 'one write met READONLY; the other four went straight to the new primary')
    t.equal(await store.healthy(), true, 'the health check writes, so it would have caught the demotion')
    const onNew = (await promoted.events({ type: 'redis_command' })).filter(e => (e as RedisCommandEvent).command === 'SET')
    t.ok(onNew.length >= 5, 'the writes went through the new primary')
  })
})
