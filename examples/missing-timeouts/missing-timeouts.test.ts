// missing-timeouts: a worker pool (4 workers and a queue) calling a backend with no timeout. A short
// blackhole blip swallows 4 requests, the 4 workers wait for answers that will never come, and the
// queue grows without bound — also after the blip heals. The fix (a timeout per call and a bounded
// queue) sheds load during the blip and recovers as soon as it heals.
import t, { type Test } from 'tap'
import http from 'node:http'
import { httpBackend, httpGet, until, withCoquin, WorkPool, type Reply } from '../support.js'

const WORKERS = 4
/** The fixed pool's queue bound, and its per-call deadline (ms). */
const MAX_QUEUE = 16
const CALL_TIMEOUT = 200
/** A new request for each service every ARRIVAL ms: 100 per second, far below what they serve. */
const ARRIVAL = 10
/** The naive queue length that shows it growing without bound. */
const GROWN = 50

interface Origin { host: string; port: number }

// ── The services ──────────────────────────────────────────────────────────────────────────────────

interface Service { pool: WorkPool; handle(): Promise<Reply> }

/** As shipped: an unbounded queue, and a backend call that waits as long as it takes. */
function naiveService(agent: http.Agent, backend: Origin): Service {
  const pool = new WorkPool({ concurrency: WORKERS })
  return { pool, handle: () => pool.run(() => httpGet({ ...backend, path: '/price', agent })) }
}

/** The fix: every call has a deadline, and a full queue refuses work instead of hoarding it. */
function fixedService(agent: http.Agent, backend: Origin): Service {
  const pool = new WorkPool({ concurrency: WORKERS, maxQueue: MAX_QUEUE })
  const call = async () => {
    const signal = AbortSignal.timeout(CALL_TIMEOUT)
    try {
      return await httpGet({ ...backend, path: '/price', agent, signal })
    } catch (err) {
      if (!signal.aborted) throw err
      throw Object.assign(new Error(`backend call timed out after ${CALL_TIMEOUT} ms`), { code: 'ETIMEDOUT', cause: err })
    }
  }
  return { pool, handle: () => pool.run(call) }
}

// ── The load ──────────────────────────────────────────────────────────────────────────────────────

type Phase = 'before' | 'blip' | 'after'
interface Job { phase: Phase; outcome?: string }

/** Requests arriving at a steady rate; each job remembers when it arrived and how it ended. */
class Load {
  readonly jobs: Job[] = []
  phase: Phase = 'before'
  readonly #timer: NodeJS.Timeout
  constructor(service: Service) {
    this.#timer = setInterval(() => {
      const job: Job = { phase: this.phase }
      this.jobs.push(job)
      service.handle().then(
        r => { job.outcome = r.status === 200 ? 'ok' : `HTTP ${r.status}` },
        (e: NodeJS.ErrnoException) => { job.outcome = e.code ?? e.name })
    }, ARRIVAL)
  }
  /** Jobs that arrived in `phase` and have ended (with `outcome`, if given). */
  ended(phase: Phase, outcome?: string): number {
    return this.jobs.filter(j => j.phase === phase && j.outcome !== undefined && (outcome === undefined || j.outcome === outcome)).length
  }
  stop(): void { clearInterval(this.#timer) }
}

// ── The outage ────────────────────────────────────────────────────────────────────────────────────

t.test('a blackhole blip: the naive pool queues without bound; the fixed one sheds load and recovers', async (t: Test) => {
  const backend = await httpBackend(t, (_req, res) => { res.end('{"price":42}') })
  const { coquin } = await withCoquin(t)
  const proxy = await coquin.proxy({ name: 'backend', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend.port}` })
  const origin = { host: '127.0.0.1', port: proxy.port }

  const agents = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })] as const
  const naive = naiveService(agents[0], origin)
  const fixed = fixedService(agents[1], origin)
  const naiveLoad = new Load(naive)
  const fixedLoad = new Load(fixed)
  t.teardown(() => {
    naiveLoad.stop(); fixedLoad.stop()
    naive.pool.close(); fixed.pool.close()
    for (const a of agents) a.destroy()   // the naive calls stuck on swallowed requests end here
  })

  await until(() => naiveLoad.ended('before', 'ok') >= 10 && fixedLoad.ended('before', 'ok') >= 10, 5000, 'both services to serve')
  t.pass('both services serve while the backend answers')

  await proxy.withFault({ type: 'blackhole', stream: 'both' }, async () => {
    naiveLoad.phase = fixedLoad.phase = 'blip'
    await until(() => naive.pool.queued > GROWN && fixed.pool.shed > 0 && fixedLoad.ended('blip', 'ETIMEDOUT') >= WORKERS,
      5000, 'the blip to bite')
  })   // the blip heals: coquin forwards again
  naiveLoad.phase = fixedLoad.phase = 'after'
  const queuedAtHeal = naive.pool.queued

  await until(() => fixedLoad.ended('after', 'ok') >= 10, 5000, 'the fixed service to recover')

  t.test('naive', async t => {
    t.equal(naive.pool.active, WORKERS, 'all 4 workers are still waiting on requests the blip swallowed')
    t.equal(naiveLoad.ended('blip') + naiveLoad.ended('after'), 0, 'not one request that arrived since the blip has ended')
    t.ok(queuedAtHeal > GROWN, `${queuedAtHeal} requests queued when the blip healed`)
    t.ok(naive.pool.queued > queuedAtHeal, `${naive.pool.queued} now: the queue keeps growing after the backend is back`)
  })

  t.test('fixed', async t => {
    t.ok(fixedLoad.ended('blip', 'ETIMEDOUT') >= WORKERS, `${fixedLoad.ended('blip', 'ETIMEDOUT')} calls gave up at their ${CALL_TIMEOUT} ms deadline`)
    t.ok(fixedLoad.ended('blip', 'EPOOLFULL') > 0, `${fixedLoad.ended('blip', 'EPOOLFULL')} requests were refused at once (load shed)`)
    t.ok(fixed.pool.peakQueue <= MAX_QUEUE, `the queue never held more than ${MAX_QUEUE} (peak ${fixed.pool.peakQueue})`)
    t.ok(fixedLoad.ended('after', 'ok') >= 10, 'requests after the blip succeed again')
    t.ok(fixed.pool.queued < MAX_QUEUE, `and the queue has drained (${fixed.pool.queued})`)
  })
})
