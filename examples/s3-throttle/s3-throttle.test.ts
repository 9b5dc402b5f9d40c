// s3-throttle: an S3-like object store throttles a bucket (503 SlowDown, as S3 does per prefix). The
// naive client retries every 503 at once and says nothing: its caller sees every upload succeed, while
// the store took a storm of requests it had refused — a retry storm hidden from every dashboard the
// caller owns. coquin's journal (http_request events) proves it: for one object, N 503s answered by
// coquin, then the 200, with ~0 ms between attempts. The fixed client backs off exponentially with
// jitter, honours Retry-After, and counts its retries: the journal shows the gaps growing.
import t, { type Test } from 'tap'
import http from 'node:http'
import { requestsFor, retryGaps, type HttpRequestEvent, type JournalEvent } from '../../src/client/index.js'
import { httpBackend, withCoquin } from '../support.js'

/** Objects each caller uploads to the throttled bucket, in sequence. */
const UPLOADS = 10
/** The throttle: 5 requests a second per bucket (burst 5), on bucket-a only. */
const RATE = 5
/** Fixed client: base of the exponential backoff, and how many retries before it gives up (ms). */
const BASE_MS = 40
const MAX_RETRIES = 6
/** Naive client: a bound so that the test ends even if throttling never lifts (the bug has none). */
const NAIVE_CAP = 2000

interface Origin { host: string; port: number; agent: http.Agent }
interface Res { status: number; headers: http.IncomingHttpHeaders; body: string }

/** One S3-style request (PUT with a body, or GET) over a keep-alive agent. */
function s3(o: Origin, method: 'PUT' | 'GET', path: string, body?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.host, port: o.port, agent: o.agent, method, path, signal: AbortSignal.timeout(5000) }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

class S3Error extends Error {
  constructor(readonly status: number, readonly code: string) { super(`S3 ${status} ${code}`) }
}
const codeOf = (body: string) => /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? 'Unknown'
const retryable = (status: number) => status === 503 || status === 500 || status === 429

// ── The clients ───────────────────────────────────────────────────────────────────────────────────

/** As shipped: a 503 is "transient", so try again — at once, until it works, and tell no one. */
class NaiveS3 {
  constructor(readonly origin: Origin) {}
  async put(path: string, body: string): Promise<void> {
    for (let i = 0; i < NAIVE_CAP; i++) {
      const r = await s3(this.origin, 'PUT', path, body)
      if (r.status === 200) return
      if (!retryable(r.status)) throw new S3Error(r.status, codeOf(r.body))
    }
    throw new S3Error(503, 'SlowDown')
  }
}

/**
 * The fix: capped exponential backoff with jitter ("equal jitter": half the step fixed, half random,
 * so attempt n waits between BASE·2^(n-1) and BASE·2^n), never less than the server's Retry-After,
 * a bounded number of retries, and a count of retries and throttles the caller can export as metrics.
 */
class FixedS3 {
  retries = 0
  throttled = 0
  constructor(readonly origin: Origin, readonly random: () => number = Math.random) {}
  async put(path: string, body: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const r = await s3(this.origin, 'PUT', path, body)
      if (r.status === 200) return
      const code = codeOf(r.body)
      if (code === 'SlowDown') this.throttled++
      if (!retryable(r.status) || attempt >= MAX_RETRIES) throw new S3Error(r.status, code)
      const step = BASE_MS * 2 ** attempt
      const backoff = step / 2 + this.random() * step / 2
      const retryAfter = Number(r.headers['retry-after'])          // seconds (an HTTP-date is ignored here)
      const wait = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.max(backoff, retryAfter * 1000) : backoff
      this.retries++
      await new Promise(resolve => setTimeout(resolve, wait))
    }
  }
}

// ── The store, behind coquin ──────────────────────────────────────────────────────────────────────

/** An S3-like store: PUT /bucket/key stores the body, GET returns it (404 NoSuchKey otherwise). */
async function objectStore(t: Test) {
  const objects = new Map<string, Buffer>()
  const backend = await httpBackend(t, (req, res, body) => {
    const path = req.url ?? '/'
    if (req.method === 'PUT') {
      objects.set(path, body)
      res.setHeader('ETag', `"${body.length}"`)
      res.end()
    } else if (req.method === 'GET' && objects.has(path)) {
      res.end(objects.get(path))
    } else {
      res.writeHead(404, { 'Content-Type': 'application/xml' })
      res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code></Error>')
    }
  })
  return { backend, objects }
}

/** The throttle S3 applies to a hot prefix: 503 SlowDown beyond RATE requests/s, per bucket, bucket-a only. */
const throttle = {
  name: 'slowdown', type: 'http_throttle',
  attributes: { match: { path_prefix: '/bucket-a/' }, key: 'bucket', rate: RATE },
} as const

const puts = (events: JournalEvent[]) => events.filter((e): e is HttpRequestEvent => e.type === 'http_request' && e.method === 'PUT')
const slowDowns = (evs: HttpRequestEvent[]) => evs.filter(e => e.status === 503 && e.source === 'coquin')
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN

t.test('a throttled bucket: the naive client hides a retry storm; the fixed one backs off', async (t: Test) => {
  const { backend, objects } = await objectStore(t)
  const { coquin } = await withCoquin(t)
  const upstream = `127.0.0.1:${backend.port}`
  // One proxy per client, so each has its own token buckets (a fault's state is its own).
  const [naiveProxy, fixedProxy] = await Promise.all(['s3-naive', 's3-fixed'].map(name =>
    coquin.proxy({ name, listen: '127.0.0.1:0', upstream, protocol: 'http', toxics: [throttle] })))
  const agents = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })] as const
  t.teardown(() => { for (const a of agents) a.destroy() })
  const naive = new NaiveS3({ host: '127.0.0.1', port: naiveProxy!.port, agent: agents[0] })
  const fixed = new FixedS3({ host: '127.0.0.1', port: fixedProxy!.port, agent: agents[1] })

  // Both callers upload UPLOADS objects to bucket-a (and one to bucket-b) as fast as their client lets them.
  const upload = async (client: NaiveS3 | FixedS3, who: string) => {
    const outcomes: string[] = []
    for (let i = 0; i < UPLOADS; i++) {
      await client.put(`/bucket-a/${who}/obj-${i}`, `object ${i}`).then(() => outcomes.push('ok'), (e: Error) => outcomes.push(e.message))
    }
    await client.put(`/bucket-b/${who}/obj-0`, 'other bucket').then(() => outcomes.push('ok'), (e: Error) => outcomes.push(e.message))
    return outcomes
  }
  const [naiveOutcomes, fixedOutcomes] = await Promise.all([upload(naive, 'naive'), upload(fixed, 'fixed')])

  const naiveEvents = await naiveProxy!.events({ type: 'http_request' })
  const fixedEvents = await fixedProxy!.events({ type: 'http_request' })

  t.test('naive', async t => {
    t.ok(naiveOutcomes.every(o => o === 'ok'), `its caller saw ${naiveOutcomes.length} of ${naiveOutcomes.length} uploads succeed, and no error`)
    const refused = slowDowns(puts(naiveEvents))
    t.ok(refused.length > 2 * UPLOADS, `but the journal holds ${refused.length} PUTs answered 503 SlowDown by coquin, for ${UPLOADS + 1} uploads`)
    // The object that waited longest for a token: its whole story is in the journal.
    const paths = [...new Set(refused.map(e => e.path))]
    const worst = paths.map(p => requestsFor(naiveEvents, p)).sort((a, b) => b.length - a.length)[0]!
    const path = worst[0]!.path
    const n503 = worst.filter(e => e.status === 503 && e.source === 'coquin').length
    t.ok(n503 >= 5, `${path}: ${n503} × 503 from coquin, then ${worst.at(-1)!.status} from the ${worst.at(-1)!.source}`)
    t.equal(worst.at(-1)!.source, 'upstream', 'the last attempt reached the store')
    const gaps = retryGaps(worst)
    t.ok(median(gaps) < 5, `retry gaps ~0 ms: median ${median(gaps).toFixed(2)} ms, max ${Math.max(...gaps).toFixed(2)} ms (no backoff)`)
    t.equal(requestsFor(naiveEvents, '/bucket-b/naive/obj-0').length, 1, 'bucket-b was never throttled: one PUT, one 200')
    t.equal(objects.get('/bucket-a/naive/obj-9')?.toString(), 'object 9', 'the store holds the objects')
  })

  t.test('fixed', async t => {
    t.ok(fixedOutcomes.every(o => o === 'ok'), `its caller's ${fixedOutcomes.length} uploads succeeded too`)
    const refused = slowDowns(puts(fixedEvents))
    t.equal(fixed.throttled, refused.length, `and it reports what happened: ${fixed.throttled} SlowDowns, ${fixed.retries} retries (the journal agrees)`)
    const naiveRefused = slowDowns(puts(naiveEvents)).length
    t.ok(refused.length * 5 < naiveRefused, `${refused.length} requests refused, against ${naiveRefused} for the naive client`)
    // Every object that needed at least two retries: the n-th wait is at least BASE·2^(n-1) (the
    // floor doubles; jitter spreads each wait over [floor, 2·floor]; a busy machine only adds).
    const stories = [...new Set(refused.map(e => e.path))].map(p => requestsFor(fixedEvents, p)).filter(s => s.length >= 3)
    t.ok(stories.length > 0, `${stories.length} uploads needed 2 retries or more`)
    for (const s of stories) {
      const gaps = retryGaps(s)
      const floors = gaps.map((_, i) => BASE_MS * 2 ** i / 2)
      t.ok(gaps.every((g, i) => g >= floors[i]! - 2),
        `${s[0]!.path}: gaps grow: ${gaps.map(g => g.toFixed(0)).join(', ')} ms (floors ${floors.join(', ')})`)
    }
  })
})

t.test('the fixed client waits at least what Retry-After asks', async (t: Test) => {
  const { backend } = await objectStore(t)
  const { coquin } = await withCoquin(t)
  const proxy = await coquin.proxy({
    name: 's3', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend.port}`, protocol: 'http',
    toxics: [{ type: 'http_status', attributes: { match: { method: 'PUT' }, count: 1, status: 503,
      headers: { 'Content-Type': 'application/xml', 'Retry-After': '1' }, body: '<Error><Code>SlowDown</Code></Error>' } }],
  })
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const fixed = new FixedS3({ host: '127.0.0.1', port: proxy.port, agent })
  await fixed.put('/bucket-a/report.csv', 'a,b')
  const story = requestsFor(await proxy.events({ type: 'http_request' }), '/bucket-a/report.csv')
  t.same(story.map(e => `${e.status} ${e.source}`), ['503 coquin', '200 upstream'], 'one 503 SlowDown, then the upload')
  const [gap] = retryGaps(story)
  t.ok(gap! >= 990, `the retry came ${gap!.toFixed(0)} ms later: Retry-After: 1, not the ${BASE_MS} ms backoff`)
})
