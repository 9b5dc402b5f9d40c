import t from 'tap'
import { createHttpStages, type HttpLinkView } from '../../src/protocols/http/stages.js'
import { seededRandom, type Random } from '../../src/core/random.js'
import { silentLogger } from '../../src/core/log.js'
import { ManualClock, makeFault } from '../helpers/http-harness.js'
import type { Fault, FaultSpec } from '../../src/faults/fault.js'
import type { HttpExchangeEvent } from '../../src/protocols/http/stages.js'
import type { HttpRequestInfo } from '../../src/observe/observer.js'

// The layer's exchange event is what the observer's httpRequest takes: the link passes it straight on.
void ((e: HttpExchangeEvent): HttpRequestInfo => e)

const b = (s: string) => Buffer.from(s, 'latin1')

/** Pairs of a request and the upstream's response to it. */
const pairs: [string, string][] = [
  ['GET /bucket-a/1 HTTP/1.1\r\nHost: x\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none'],
  ['HEAD /bucket-a/2 HTTP/1.1\r\nHost: x\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n'],
  ['PUT /bucket-a/3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;s=1\r\nabc\r\n0\r\nT: 1\r\n\r\n', 'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n'],
  ['DELETE /bucket-b/4 HTTP/1.1\r\nHost: x\r\n\r\n', 'HTTP/1.1 204 No Content\r\n\r\n'],
  ['GET /bucket-b/5 HTTP/1.1\nHost: x\nIf-None-Match: "a"\n\n', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'],
  ['PUT /bucket-a/6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
  ['POST /bucket-b/7?uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
]

function run(faults: FaultSpec[], chunksUp: Buffer[], chunksDown: (forwarded: string[]) => Buffer[], opts: { headerFaults?: boolean; interleave?: Random } = {}) {
  const up: Buffer[] = []
  const down: Buffer[] = []
  const events: string[] = []
  const exchanges: string[] = []
  const clock = new ManualClock()
  const list: Fault[] = faults.map(makeFault)
  const link: HttpLinkView = {
    id: 1, client: { address: '127.0.0.1', port: 1 }, log: silentLogger, clock, random: seededRandom(5),
    reset: r => { events.push(`reset:${r}`) }, close: r => { events.push(`close:${r}`) },
    applied: f => { events.push(`hit:${f.name}`) }, acted() {}, fallback: (s, r) => { events.push(`fallback:${s === 'upstream' ? 'request' : 'response'}: ${r}`); return 'pass' },
    exchanged: e => { exchanges.push(`${e.index} ${e.method} ${e.target} ${e.status} ${e.source} ${e.faults.join('+')}`.trim()) },
  }
  let upEnded = false
  const stages = createHttpStages(link, () => list, {
    upstream: { write: c => up.push(Buffer.from(c)), end: () => { upEnded = true } },
    downstream: { write: c => down.push(Buffer.from(c)), end: () => {} },
  }, opts)
  for (const c of chunksUp) stages.upstream.write(c)
  // the upstream answers what reached it
  const forwarded = Buffer.concat(up).toString('latin1')
  const reached = pairs.filter(([req]) => forwarded.includes(req.split('\n')[0]!.replace('\r', ''))).map(([req]) => req)
  for (const c of chunksDown(reached)) stages.downstream.write(c)
  stages.upstream.end()
  stages.downstream.end()
  return { up: Buffer.concat(up), down: Buffer.concat(down), events, exchanges, held: stages.upstream.held + stages.downstream.held, upEnded }
}

function splits(buf: Buffer, random: Random, max: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < buf.length;) { const n = 1 + Math.floor(random() * max); out.push(buf.subarray(i, i + n)); i += n }
  return out
}

const reqs = b(pairs.map(p => p[0]).join(''))
const respFor = (reached: string[]) => b(pairs.filter(p => reached.includes(p[0])).map(p => p[1]).join(''))

t.test('no fault firing: both streams byte-exact under any split, nothing held', async t => {
  const random = seededRandom(1)
  for (let i = 0; i < 200; i++) {
    const max = i < 100 ? 4 : 200
    const r = run([{ type: 'http_status', attributes: { match: { path: '/none' } } }], splits(reqs, random, max), reached => splits(respFor(reached), random, max))
    if (!r.up.equals(reqs) || !r.down.equals(respFor(pairs.map(p => p[0])))) { t.fail(`split ${i}: bytes differ`); return }
    if (r.events.length > 0 || r.held !== 0) { t.fail(`split ${i}: ${r.events.join(' ')} held ${r.held}`); return }
  }
  t.pass('200 splits')
})

t.test('answers slot into the pipeline: the same result under any split', async t => {
  const faults: FaultSpec[] = [
    { name: 'st', type: 'http_status', attributes: { status: 503, body: 'slow', match: { path: '/bucket-a/*', method: ['PUT', 'HEAD'] } } },
    { name: 'hd', type: 'http_header', attributes: { response: { set: { 'X-Coquin': '1' } }, match: { path_prefix: '/bucket-b/' } } },
  ]
  const whole = run(faults, [reqs], reached => [respFor(reached)])
  const expectUp = pairs.filter((_, i) => ![1, 2, 5].includes(i)).map(p => p[0]).join('')
  t.equal(whole.up.toString('latin1'), expectUp, 'answered requests (HEAD, chunked PUT, PUT) swallowed, bodies included')
  const statuses = [...whole.down.toString('latin1').matchAll(/HTTP\/1\.1 (\d+)/g)].map(m => m[1])
  t.same(statuses, ['200', '503', '503', '204', '304', '503', '200'], 'responses in request order (the 100 Continue went with its swallowed request)')
  t.match(whole.down.toString('latin1'), /HTTP\/1\.1 503 Service Unavailable\r\nX-Coquin-Fault: st\r\nContent-Length: 4\r\n\r\nHTTP/, 'no body for HEAD')
  t.equal((whole.down.toString('latin1').match(/X-Coquin: 1/g) ?? []).length, 3, 'bucket-b responses edited')
  t.same(whole.exchanges, [
    '0 GET /bucket-a/1 200 upstream', '1 HEAD /bucket-a/2 503 coquin st', '2 PUT /bucket-a/3 503 coquin st',
    '3 DELETE /bucket-b/4 204 upstream hd', '4 GET /bucket-b/5 304 upstream hd', '5 PUT /bucket-a/6 503 coquin st',
    '6 POST /bucket-b/7?uploads 200 upstream hd',
  ], 'one exchange event per request, in order')
  const random = seededRandom(2)
  for (let i = 0; i < 200; i++) {
    const r = run(faults, splits(reqs, random, i < 100 ? 5 : 300), reached => splits(respFor(reached), random, i < 100 ? 5 : 300))
    if (!r.up.equals(whole.up) || !r.down.equals(whole.down) || r.events.join() !== whole.events.join() || r.exchanges.join() !== whole.exchanges.join()) {
      t.equal(r.down.toString('latin1'), whole.down.toString('latin1'), `split ${i}`)
      return
    }
  }
  t.pass('200 splits agree')
})

t.test('fuzz: garbage and mutations through both stages never reach the error path (seeded)', async t => {
  const random = seededRandom(77)
  const faults: FaultSpec[] = [
    { type: 'http_status', toxicity: 0.5, attributes: { match: { method: 'PUT' } } },
    { type: 'http_abort', toxicity: 0.1, attributes: { phase: 'after_bytes', bytes: 3, mode: 'fin' } },
    { type: 'http_delay', toxicity: 0.2, attributes: { delay: 10, phase: 'response_body' } },
    { type: 'http_close', toxicity: 0.1, attributes: { every: 2 } },
    { type: 'http_header', attributes: { request: { remove: ['host'] }, response: { set: { a: 'b' } } } },
  ]
  const resAll = b(pairs.map(p => p[1]).join(''))
  for (let i = 0; i < 600; i++) {
    const mutate = (src: Buffer) => {
      const x = Buffer.from(src)
      for (let k = 0; k < 1 + Math.floor(random() * 3); k++) x[Math.floor(random() * x.length)] = Math.floor(random() * 256)
      return x
    }
    const upIn = i % 2 === 0 ? mutate(reqs) : reqs
    const downIn = i % 2 === 1 ? mutate(resAll) : resAll
    let r
    try {
      r = run(faults, splits(upIn, random, 64), () => splits(downIn, random, 64), { headerFaults: true })
    } catch (err) {
      t.fail(`case ${i} threw: ${(err as Error).stack}`)
      return
    }
    if (r.events.includes('reset:http_error')) { t.fail(`case ${i}: the layer failed`); return }
  }
  t.pass('600 cases')
})

t.test('an exchange event reads its target and path when asked, and serializes whole', async t => {
  const events: HttpExchangeEvent[] = []
  const link: HttpLinkView = {
    id: 1, client: { address: '127.0.0.1', port: 1 }, log: silentLogger, clock: new ManualClock(), random: seededRandom(5),
    reset() {}, close() {}, applied() {}, acted() {}, fallback: () => 'pass', exchanged: e => { events.push(e) },
  }
  const down: Buffer[] = []
  const stages = createHttpStages(link, () => [], {
    upstream: { write() {}, end() {} }, downstream: { write: c => down.push(c), end() {} },
  })
  const res = b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  stages.upstream.write(b('GET /a/b?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET http://h/c HTTP/1.1\r\nHost: h\r\n\r\n'))
  stages.downstream.write(res)
  t.equal(down[0], res, 'a response that passes untouched is the chunk that came in')
  stages.downstream.write(Buffer.concat([res, res]).subarray(res.length))
  t.same(events.map(e => [e.method, e.target, e.path, e.status]), [['GET', '/a/b?x=1', '/a/b', 200], ['GET', 'http://h/c', '/c', 200]])
  t.same(JSON.parse(JSON.stringify(events[0])), {
    index: 0, method: 'GET', path: '/a/b', target: '/a/b?x=1', status: 200, source: 'upstream', latencyMs: 0, faults: [], host: 'x',
  })
  t.equal(events[1]!.host, 'h', 'the Host field, read when asked')
})
