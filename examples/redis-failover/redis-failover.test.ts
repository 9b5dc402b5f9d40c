// redis-failover: a real Redis (redis-server, started here on loopback) behind coquin, and a real
// client (ioredis) meeting what a failover looks like from the client's side: a slow primary, a
// connection reset with a reply in flight, and a cut where the old primary stops answering. The
// naive client runs on ioredis's defaults; the fixed one bounds every wait and fails fast.
import t, { type Test } from 'tap'
import { Redis, type RedisOptions } from 'ioredis'
import { retryGaps, type JournalEvent, type LinkCloseEvent, type LinkOpenEvent, type ProxyHandle } from '../../src/client/index.js'
import { metric, redisServer, redisSkip, until, within, withCoquin } from '../support.js'

const skip = redisSkip

/** The fixed client's budget for one command (ms), and the slow primary's added latency. */
const COMMAND_TIMEOUT = 200
const SLOW = 500
/** No byte for this long while replies are due: the fixed client drops the connection and reconnects. */
const SOCKET_TIMEOUT = 1000

// ── The clients ───────────────────────────────────────────────────────────────────────────────────

/**
 * As shipped: ioredis's defaults. No command timeout; while disconnected, commands wait in the offline
 * queue; commands in flight when a connection drops are sent again after the reconnect (up to 20 times).
 */
const NAIVE: RedisOptions = {}

/** The fix: every wait is bounded, and a command whose outcome is unknown fails instead of being resent. */
const FIXED: RedisOptions = {
  commandTimeout: COMMAND_TIMEOUT,   // a command fails after 200 ms, whatever the connection does
  socketTimeout: SOCKET_TIMEOUT,     // replies due and no byte for 1 s: the connection is dead, reconnect
  enableOfflineQueue: false,         // while disconnected, fail at once instead of queueing without bound
  maxRetriesPerRequest: 0,           // a command in flight when the connection drops fails: never run twice
  retryStrategy: times => Math.min(50 * times, 500),
}

interface Client {
  redis: Redis
  /** What ioredis told the application. */
  events: { ready: number; reconnecting: number; errors: string[] }
}

async function connect(t: Test, port: number, opts: RedisOptions): Promise<Client> {
  const redis = new Redis({ host: '127.0.0.1', port, ...opts })
  const events: Client['events'] = { ready: 0, reconnecting: 0, errors: [] }
  redis.on('ready', () => { events.ready++ })
  redis.on('reconnecting', () => { events.reconnecting++ })
  redis.on('error', (err: Error) => { events.errors.push(err.message) })
  t.teardown(() => redis.disconnect())
  await within(nextReady(redis), 5000, 'the client to be ready')
  return { redis, events }
}

/** The next 'ready' event (events.once would reject on the 'error' events a reconnect brings). */
const nextReady = (redis: Redis) => new Promise<void>(resolve => redis.once('ready', () => resolve()))

// ── The servers ───────────────────────────────────────────────────────────────────────────────────

/** Redis behind coquin: the clients under test go through the proxy, `truth` talks to Redis directly. */
async function setup(t: Test) {
  const { port } = await redisServer(t)
  const { server, coquin } = await withCoquin(t)
  const proxy = await coquin.create({ name: 'redis', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}` })
  const truth = new Redis({ host: '127.0.0.1', port })
  t.teardown(() => truth.disconnect())
  /** Ids of coquin's open links for this proxy: one per client connection. */
  const links = () => [...server.registry.get('redis').links].map(l => l.id)
  const metrics = {
    opened: () => metric(server.url, 'coquin_links_opened_total', { proxy: 'redis' }),
    closed: (reason: string) => metric(server.url, 'coquin_links_closed_total', { proxy: 'redis', reason }),
  }
  /** coquin's journal for this proxy (`GET /events`): each link opened and closed, when, and why. */
  const journal = async (): Promise<Journal> => {
    const events = await proxy.events({ type: ['link_open', 'link_close'] })
    return {
      events,
      opened: events.filter((e): e is LinkOpenEvent => e.type === 'link_open'),
      closed: events.filter((e): e is LinkCloseEvent => e.type === 'link_close'),
    }
  }
  return { proxy, truth, links, metrics, journal }
}

interface Journal { events: JournalEvent[]; opened: LinkOpenEvent[]; closed: LinkCloseEvent[] }

/** The journal's clock (epoch ms, fractional): coquin runs in this process, so the test can read it too. */
const journalNow = () => performance.timeOrigin + performance.now()

const elapsed = async <V>(p: Promise<V>): Promise<{ ms: number; value?: V; error?: Error }> => {
  const start = performance.now()
  try {
    const value = await p
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error: error as Error }
  }
}

// ── (a) A slow primary ────────────────────────────────────────────────────────────────────────────

t.test(`a slow primary: +${SLOW} ms on every reply, against a ${COMMAND_TIMEOUT} ms budget`, { skip }, async t => {
  const slow = { name: 'slow', type: 'latency', stream: 'downstream', attributes: { latency: SLOW } } as const

  t.test('naive: no command timeout, the caller waits as long as Redis takes', async t => {
    const { proxy, truth } = await setup(t)
    await truth.set('greeting', 'hello')
    const { redis } = await connect(t, proxy.port, NAIVE)
    const res = await proxy.withFault(slow, () => elapsed(within(redis.get('greeting'), 5000, 'GET')))
    t.equal(res.value, 'hello', 'the GET succeeds')
    t.ok(res.ms >= SLOW - 5, `after ${Math.round(res.ms)} ms: the whole ${SLOW} ms, well past a ${COMMAND_TIMEOUT} ms budget`)
  })

  t.test('fixed: the command fails at its timeout, and works again once Redis is fast', async t => {
    const { proxy, truth } = await setup(t)
    await truth.mset('greeting', 'hello', 'farewell', 'bye')
    const { redis, events } = await connect(t, proxy.port, FIXED)
    const res = await proxy.withFault(slow, () => elapsed(within(redis.get('greeting'), 5000, 'GET')))
    t.equal(res.error?.message, 'Command timed out', 'the GET fails with "Command timed out"')
    t.ok(res.ms >= COMMAND_TIMEOUT - 5 && res.ms < SLOW - 50, `after ${Math.round(res.ms)} ms: at the budget, not at Redis's pace`)
    // The fault is gone: the late reply to the timed-out GET arrives first and is dropped by ioredis,
    // so the next command gets its own reply (a different key shows any mix-up).
    const next = await elapsed(within(redis.get('farewell'), 5000, 'GET'))
    t.equal(next.value, 'bye', `the next GET gets its own reply, in ${Math.round(next.ms)} ms`)
    t.equal(events.reconnecting, 0, 'on the same connection: a slow reply is not a dead connection')
  })
})

// ── (b) A reset with the reply in flight ──────────────────────────────────────────────────────────

const ROUNDS = 3

/**
 * Each round: one INCR, whose reply coquin drops before resetting the connection (`reset_peer` on the
 * downstream, `count: 1`: only the link open now). Redis ran the INCR; the client never saw the answer.
 */
async function lostReply<V>(proxy: ProxyHandle, call: () => Promise<V>) {
  return proxy.withFault({ name: 'lost-reply', type: 'reset_peer', stream: 'downstream', attributes: { timeout: 0, count: 1 } },
    () => elapsed(within(call(), 5000, 'INCR')))
}

/** The journal tells the same story: one link per connection, each reset, and the client's backoff before reconnecting. */
function journalShowsReconnects(t: Test, { events, opened, closed }: Journal, seen: number[][]) {
  t.same(opened.map(e => e.link), seen.map(ids => ids[0]), 'the journal has a link_open for each of those links')
  t.same(closed.map(e => e.reason), Array(ROUNDS).fill('reset_peer'), 'and a link_close with reason reset_peer for each reset')
  const gaps = retryGaps(events)
  t.ok(gaps.length === ROUNDS && gaps.every(g => g >= 45),
    `the client waited its backoff before each reconnect: ${gaps.map(g => `${Math.round(g)} ms`).join(', ')}`)
}

t.test(`a connection reset while the reply is in flight, ${ROUNDS} times`, { skip }, async t => {
  t.test('naive: the client resends the INCR after reconnecting, and Redis counts it twice', async t => {
    const { proxy, truth, links, metrics, journal } = await setup(t)
    const { redis, events } = await connect(t, proxy.port, NAIVE)
    const seen = [links()]
    const answers: unknown[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      const ready = nextReady(redis)
      const res = await lostReply(proxy, () => redis.incr('hits'))
      await within(ready, 5000, 'the reconnect')
      answers.push(res.value)
      seen.push(links())
    }
    t.same(answers, [2, 4, 6], 'each INCR "succeeded", but the counter moved by 2 each time')
    t.equal(await truth.get('hits'), String(2 * ROUNDS), `Redis counted ${2 * ROUNDS} for ${ROUNDS} calls`)
    t.equal(events.reconnecting, ROUNDS, `ioredis reconnected ${ROUNDS} times ('reconnecting' events)`)
    t.same(events.errors.map(e => e.replace(/ \d+$/, '')), Array(ROUNDS).fill('read ECONNRESET'),
      'each reset showed only as an "error" event, which nothing in the application reads')
    t.ok(seen.every(ids => ids.length === 1) && new Set(seen.flat()).size === ROUNDS + 1,
      `coquin saw a new link per reconnect: ${seen.map(ids => `#${ids[0]}`).join(' → ')}`)
    t.equal(await metrics.opened(), ROUNDS + 1, `coquin_links_opened_total = ${ROUNDS + 1}`)
    t.equal(await metrics.closed('reset_peer'), ROUNDS, `coquin_links_closed_total{reason="reset_peer"} = ${ROUNDS}`)
    journalShowsReconnects(t, await journal(), seen)
  })

  t.test('fixed: the INCR fails (outcome unknown) instead of running twice; the client reconnects', async t => {
    const { proxy, truth, links, metrics, journal } = await setup(t)
    const { redis, events } = await connect(t, proxy.port, FIXED)
    const seen = [links()]
    for (let round = 1; round <= ROUNDS; round++) {
      const ready = nextReady(redis)
      const res = await lostReply(proxy, () => redis.incr('hits'))
      t.match(res.error, { name: 'MaxRetriesPerRequestError' }, `round ${round}: the INCR fails with MaxRetriesPerRequestError`)
      t.ok(res.ms < COMMAND_TIMEOUT, `at once (${Math.round(res.ms)} ms)`)
      await within(ready, 5000, 'the reconnect')
      seen.push(links())
    }
    t.equal(await truth.get('hits'), String(ROUNDS), `Redis counted each of the ${ROUNDS} INCRs once`)
    t.equal(await within(redis.get('hits'), 5000, 'GET'), String(ROUNDS), 'and the caller can read back what happened')
    t.equal(events.reconnecting, ROUNDS, `ioredis reconnected ${ROUNDS} times`)
    t.ok(seen.every(ids => ids.length === 1) && new Set(seen.flat()).size === ROUNDS + 1,
      `coquin saw a new link per reconnect: ${seen.map(ids => `#${ids[0]}`).join(' → ')}`)
    t.equal(await metrics.opened(), ROUNDS + 1, `coquin_links_opened_total = ${ROUNDS + 1}`)
    t.equal(await metrics.closed('reset_peer'), ROUNDS, `coquin_links_closed_total{reason="reset_peer"} = ${ROUNDS}`)
    journalShowsReconnects(t, await journal(), seen)
  })
})

// ── (c) The old primary stops answering ───────────────────────────────────────────────────────────

/** A new GET every ARRIVAL ms; CUT ms of partition; the fixed client must be back within RECOVER ms of the heal. */
const ARRIVAL = 10
const CUT = 1500
const RECOVER = 2000

interface Call { at: number; phase: Phase; settledAfter?: number; outcome?: string }
type Phase = 'before' | 'cut' | 'healed'

/** Steady load: each call remembers when it started, how long it took and how it ended. */
class Load {
  readonly calls: Call[] = []
  phase: Phase = 'before'
  readonly #timer: NodeJS.Timeout
  constructor(redis: Redis) {
    this.#timer = setInterval(() => {
      const call: Call = { at: performance.now(), phase: this.phase }
      this.calls.push(call)
      redis.get('k').then(
        v => { call.outcome = v === 'v' ? 'ok' : `wrong reply ${v}` },
        (err: Error) => { call.outcome = err.message },
      ).finally(() => { call.settledAfter = performance.now() - call.at })
    }, ARRIVAL)
  }
  stop(): void { clearInterval(this.#timer) }
  in(phase: Phase): Call[] { return this.calls.filter(c => c.phase === phase) }
  get pending(): number { return this.calls.filter(c => c.outcome === undefined).length }
}

/**
 * How the fixed client fails fast: a command times out; one in flight when the socket timeout drops
 * the connection fails instead of being resent; one sent while it reconnects is refused at once.
 */
const EXPECTED = /^(Command timed out|Reached the max retries per request limit \(which is 0\)\..*|Stream isn't writeable and enableOfflineQueue options is false)$/

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** 200 ms of load before the cut: every GET issued in it must work. */
async function warm(load: Load): Promise<void> {
  await sleep(200)
  const before = [...load.in('before')]
  await until(() => before.every(c => c.outcome !== undefined), 5000, 'the GETs before the cut')
  const failed = before.filter(c => c.outcome !== 'ok')
  if (failed.length > 0) throw new Error(`${failed.length} GETs failed before the cut: ${failed[0]!.outcome}`)
}

t.test(`a ${CUT} ms cut: the old primary stops answering (blackhole, both ways), then comes back`, { skip }, async t => {
  const cut = { name: 'cut', type: 'blackhole', stream: 'both' } as const

  t.test('naive: every command waits, the queue grows with the cut, and nobody is told', async t => {
    const { proxy, truth } = await setup(t)
    await truth.set('k', 'v')
    const { redis, events } = await connect(t, proxy.port, NAIVE)
    const load = new Load(redis)
    t.teardown(() => load.stop())
    await warm(load)
    t.pass('before the cut every GET works')

    await proxy.addFault(cut)
    load.phase = 'cut'
    await sleep(CUT / 2)
    const half = load.pending
    await sleep(CUT / 2)
    const full = load.pending
    load.stop()
    const during = load.in('cut')
    t.ok(half >= 20 && full >= 1.6 * half, `waiting GETs: ${half} half-way, ${full} at the end: growing with the cut, no bound`)
    t.equal(during.filter(c => c.outcome !== undefined).length, 0, `none of the ${during.length} GETs of the cut has ended`)
    t.equal(redis.commandQueue.length, full, 'all of them in ioredis\'s command queue, sent and awaiting a reply')
    t.equal(redis.status, 'ready', 'the client still reports "ready"')
    t.same(events.errors, [], 'no error event')
    t.equal(events.reconnecting, 0, 'no reconnect: nothing ever finds the connection dead (coquin answers TCP keepalives)')
    // Through coquin the bytes sent into the cut are lost for good, so these GETs would wait forever;
    // over a real network they wait until TCP gives up (about 15 minutes on Linux).
    await proxy.removeFault('cut')
  })

  t.test('fixed: commands fail within the budget, the client reconnects, and is back soon after the heal', async t => {
    const { proxy, truth, metrics, journal } = await setup(t)
    await truth.set('k', 'v')
    const { redis, events } = await connect(t, proxy.port, FIXED)
    const load = new Load(redis)
    t.teardown(() => load.stop())
    await warm(load)
    t.pass('before the cut every GET works')
    const openedBefore = await metrics.opened()

    const cutAt = journalNow()
    await proxy.addFault(cut)
    load.phase = 'cut'
    let peak = 0
    const end = performance.now() + CUT
    while (performance.now() < end) { peak = Math.max(peak, load.pending); await sleep(ARRIVAL) }
    load.phase = 'healed'
    await proxy.removeFault('cut')
    const healed = performance.now()

    const during = load.in('cut')
    const bound = 2 * Math.ceil(COMMAND_TIMEOUT / ARRIVAL)
    t.ok(peak <= bound, `at most ${peak} GETs waiting at any time (bound ${bound}): the queue does not grow`)
    await until(() => during.every(c => c.outcome !== undefined), 5000, 'the GETs of the cut to end')
    const slowest = Math.max(...during.map(c => c.settledAfter!))
    t.ok(slowest < 2 * COMMAND_TIMEOUT, `each of the ${during.length} GETs of the cut ended within ${Math.round(slowest)} ms`)
    const outcomes = new Set(during.map(c => c.outcome))
    t.notOk(outcomes.has('ok'), 'with an error: none got through the cut')
    t.same([...outcomes].filter(o => !EXPECTED.test(o!)), [],
      `errors: ${[...outcomes].map(o => JSON.stringify(o)).join(', ')}`)
    t.ok(events.reconnecting >= 1, `the socket timeout found the connection dead: ${events.reconnecting} reconnect attempt(s)`)
    t.ok(await metrics.opened() > openedBefore, 'each attempt a new link through coquin')
    // The journal: the client's second link opened one socket timeout (plus its 50 ms backoff) into the
    // cut. (The first link's close is logged only at the heal: like a partition, the cut holds its FIN.)
    const reconnect = (await journal()).opened.find(e => e.time > cutAt)
    const into = reconnect ? reconnect.time - cutAt : NaN
    t.ok(into >= SOCKET_TIMEOUT && into < SOCKET_TIMEOUT + 400,
      `the journal: a new link ${Math.round(into)} ms into the cut: the socket timeout, then the backoff`)

    await until(() => load.in('healed').some(c => c.outcome === 'ok'), RECOVER, 'a GET to work after the heal')
    const first = load.in('healed').find(c => c.outcome === 'ok')!
    t.ok(first.at + first.settledAfter! - healed < RECOVER, `back ${Math.round(first.at + first.settledAfter! - healed)} ms after the heal`)
    await sleep(200)
    load.stop()
    await until(() => load.pending === 0, 5000, 'the last GETs to end')
    const after = load.calls.slice(load.calls.indexOf(first))
    t.ok(after.every(c => c.outcome === 'ok'), `and every one of the ${after.length} GETs since then works`)
  })
})
