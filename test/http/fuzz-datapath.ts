// The HTTP data path, fuzzed (fast-check): a real `protocol: http` proxy (Registry → Proxy → Link)
// in front of a raw TCP upstream that records every byte it gets and answers with fuzzed bytes.
// Requests and responses are valid, mutated (broken start lines, bad or huge Content-Length, bad
// chunk sizes, obs-fold, NUL, bare LF, header floods past the framer's limits, truncation, random
// bytes) or random, pipelined, and cut at random chunk boundaries. With no fault, HTTP mode frames
// what it can and passes the rest through as TCP: every byte arrives unchanged and in order both
// ways, FINs cross, and the link ends. With an http_status fault answering some requests, nothing
// crashes and every link ends. coquin logs nothing at error level throughout.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import net from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { registry as makeRegistry, listen, until, within } from '../helpers/net.js'
import type { Proxy } from '../../src/datapath/proxy.js'

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 424_242
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 120
t.comment(`fast-check seed ${SEED}, ${RUNS} runs per property (replay with FUZZ_SEED=${SEED}; more with FUZZ_RUNS)`)

const MAX_HEAD = 64 * 1024
const b = (s: string) => Buffer.from(s, 'latin1')

// Messages ---------------------------------------------------------------------------------------

/** The mutations' own choices, drawn from integers fast-check generated (so a run replays). */
interface Rng { nextInt(lo: number, hi: number): number }
type Mutation = (m: Buffer, r: Rng) => Buffer
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.nextInt(0, xs.length - 1)]!
const at = (m: Buffer, r: Rng) => r.nextInt(0, m.length)
const headEnd = (m: Buffer) => { const i = m.indexOf('\r\n\r\n'); return i < 0 ? m.length : i }
const splice = (m: Buffer, i: number, del: number, ins: Buffer) => Buffer.concat([m.subarray(0, i), ins, m.subarray(i + del)])
/** Inserts header lines right after the start line. */
const addHeaders = (m: Buffer, lines: string) => { const i = m.indexOf('\r\n'); return i < 0 ? m : splice(m, i + 2, 0, b(lines)) }

const mutations: Record<string, Mutation> = {
  'truncate': (m, r) => m.subarray(0, at(m, r)),
  'random bytes': (m, r) => splice(m, at(m, r), 0, Buffer.from(Array.from({ length: r.nextInt(1, 16) }, () => r.nextInt(0, 255)))),
  'flip a byte': (m, r) => { const c = Buffer.from(m); if (c.length) c[r.nextInt(0, c.length - 1)] = r.nextInt(0, 255); return c },
  'bare LF': m => splice(m, 0, headEnd(m), b(m.subarray(0, headEnd(m)).toString('latin1').replaceAll('\r\n', '\n'))),
  'bare CR': (m, r) => splice(m, r.nextInt(0, headEnd(m)), 0, b('\r')),
  'obs-fold': m => addHeaders(m, 'X-Fold: a\r\n  folded\r\n\tmore\r\n'),
  'NUL in a field': m => addHeaders(m, 'X-Nul: a\0b\r\n'),
  'NUL in the start line': m => splice(m, 1, 0, b('\0')),
  'space before colon': m => addHeaders(m, 'Content-Length : 5\r\n'),
  'bad Content-Length': (m, r) => addHeaders(m, `Content-Length: ${pick(r, ['-1', 'abc', '99999999999999999999', '1, 2', '+5', ' 5 ', '0x10', '1e3', '', '18446744073709551616', '9007199254740993'])}\r\n`),
  'two Content-Lengths': m => addHeaders(m, 'Content-Length: 3\r\nContent-Length: 7\r\n'),
  'Content-Length and chunked': m => addHeaders(m, 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n'),
  'other coding': m => addHeaders(m, 'Transfer-Encoding: gzip\r\n'),
  'chunked twice': m => addHeaders(m, 'Transfer-Encoding: chunked, chunked\r\n'),
  'bad chunk size': (m, r) => Buffer.concat([addHeaders(m.subarray(0, headEnd(m) + 4), 'Transfer-Encoding: chunked\r\n'),
    b(pick(r, ['zz\r\n', '-1\r\n', 'ffffffffffffffffffff\r\n', '5\r\nab', '3\r\nabcXY', '1;' + 'e'.repeat(MAX_HEAD + 10) + '\r\n', '0\r\n' + 'T: x\r\n'.repeat(12_000), '5 \r\nabcde\r\n0\r\n\r\n', '0\n\n']))]),
  'header flood (fields)': m => addHeaders(m, 'X-A: b\r\n'.repeat(1100)),
  'header flood (bytes)': m => addHeaders(m, `X-Big: ${'v'.repeat(MAX_HEAD + 100)}\r\n`),
  'long start line': m => splice(m, m.indexOf(' ') + 1, 0, b('a'.repeat(MAX_HEAD + 10))),
  'upgrade': m => addHeaders(m, 'Connection: Upgrade\r\nUpgrade: websocket\r\n'),
  'expect 100-continue': m => addHeaders(m, 'Expect: 100-continue\r\n'),
  'connection close': m => addHeaders(m, 'Connection: close\r\n'),
}
const mutationNames = Object.keys(mutations)

const bodyArb = fc.oneof(
  fc.constant({ kind: 'none' as const, data: '' }),
  fc.string({ maxLength: 300 }).map(data => ({ kind: 'length' as const, data })),
  fc.array(fc.string({ minLength: 1, maxLength: 100 }), { maxLength: 4 }).map(parts => ({ kind: 'chunked' as const, data: parts.join(''), parts })),
)

function withBody(head: string, body: { kind: string; data: string; parts?: string[] }): Buffer {
  if (body.kind === 'length') return Buffer.concat([b(`${head}Content-Length: ${Buffer.byteLength(body.data)}\r\n\r\n`), Buffer.from(body.data)])
  if (body.kind === 'chunked') {
    const parts = (body.parts ?? []).map(p => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('')
    return Buffer.concat([b(`${head}Transfer-Encoding: chunked\r\n\r\n`), Buffer.from(`${parts}0\r\n\r\n`)])
  }
  return b(`${head}\r\n`)
}

const requestArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'get', 'M-SEARCH'),
  target: fc.constantFrom('/', '/a/b?x=1&y', '/fault/x', '/fault', 'http://h/p?q', '*', 'h:443', '/%zz', '/é'),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'http/1.1'),
  headers: fc.array(fc.constantFrom('Host: x', 'Accept: */*', 'Connection: keep-alive', 'X-Tenant: t1', 'Cookie: a=b; c=d', 'X-Empty:', 'x-lower: v'), { maxLength: 4 }),
  body: bodyArb,
}).map(q => withBody(`${q.method} ${q.target} ${q.version}\r\n${q.headers.map(h => `${h}\r\n`).join('')}`, q.body))

const responseArb = fc.record({
  interim: fc.constantFrom('', '', '', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n'),
  status: fc.constantFrom('200 OK', '201 Created', '204 No Content', '304 Not Modified', '404 Not Found', '503 Slow Down', '101 Switching Protocols', '999 Odd', '200'),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'ICY'),
  headers: fc.array(fc.constantFrom('Server: u', 'Connection: keep-alive', 'Connection: close', 'Content-Type: text/plain', 'Set-Cookie: a=b'), { maxLength: 3 }),
  body: bodyArb,
}).map(s => Buffer.concat([b(s.interim), withBody(`${s.version} ${s.status}\r\n${s.headers.map(h => `${h}\r\n`).join('')}`, s.body)]))

/** Plain requests and responses a server and client agree on: these links stay framed to the end. */
const plainRequestArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
  target: fc.constantFrom('/', '/a/b?x=1', '/fault/x', '/fault'),
  body: bodyArb,
}).map(q => withBody(`${q.method} ${q.target} HTTP/1.1\r\nHost: x\r\n`, q.body))
const plainResponseArb = fc.oneof(
  fc.record({ status: fc.constantFrom('200 OK', '404 Not Found', '503 Slow Down'), body: bodyArb })
    .map(s => withBody(`HTTP/1.1 ${s.status}\r\n`, s.body.kind === 'none' ? { kind: 'length', data: '' } : s.body)),
  fc.constantFrom(b('HTTP/1.1 204 No Content\r\n\r\n'), b('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'),
    b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx')),
)

/** A message: valid, mutated (0–2 named mutations, drawn from a seed), or random bytes. */
function messageArb(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<{ bytes: Buffer; how: string }> {
  return fc.oneof(
    { weight: 2, arbitrary: valid.map(bytes => ({ bytes, how: 'valid' })) },
    { weight: 4, arbitrary: fc.tuple(valid, fc.array(fc.constantFrom(...mutationNames), { minLength: 1, maxLength: 2 }), fc.infiniteStream(fc.integer({ min: 0, max: 0x7fffffff })))
      .map(([m, names, ints]) => {
        const it = ints[Symbol.iterator]()
        const r: Rng = { nextInt: (lo, hi) => lo + ((it.next().value as number) % (hi - lo + 1)) }
        return { bytes: names.reduce((x, n) => mutations[n]!(x, r), m), how: names.join('+') }
      }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 400 }).map(a => ({ bytes: Buffer.from(a), how: 'random' })) },
  )
}

interface Run {
  requests: { bytes: Buffer; how: string }[]
  responses: { bytes: Buffer; how: string }[]
  /** Sizes of the writes, used in turn (both sides). */
  cuts: number[]
  /** after: the upstream answers once the client's FIN came; eager: a piece per chunk it reads. */
  mode: 'after' | 'eager'
}

const cutsArb = fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4000 }), fc.constant(1 << 20)), { minLength: 1, maxLength: 8 })
const modeArb = fc.constantFrom('after' as const, 'eager' as const)

/** Fuzzed runs, and runs of n valid requests answered by n valid responses (mostly framed to the end). */
const runArb: fc.Arbitrary<Run> = fc.oneof(
  fc.record({
    requests: fc.array(messageArb(requestArb), { minLength: 1, maxLength: 5 }),
    responses: fc.array(messageArb(responseArb), { minLength: 0, maxLength: 5 }),
    cuts: cutsArb,
    mode: modeArb,
  }),
  fc.integer({ min: 1, max: 4 }).chain(n => fc.record({
    requests: fc.array(plainRequestArb.map(bytes => ({ bytes, how: 'plain' })), { minLength: n, maxLength: n }),
    responses: fc.array(plainResponseArb.map(bytes => ({ bytes, how: 'plain' })), { minLength: n, maxLength: n }),
    cuts: cutsArb,
    mode: fc.constant('after' as const),
  })),
)

const describe = (r: Run) => `requests [${r.requests.map(m => `${m.how} ${m.bytes.length}B`).join(', ')}], responses [${r.responses.map(m => `${m.how} ${m.bytes.length}B`).join(', ')}], cuts ${JSON.stringify(r.cuts)}, ${r.mode}`

function pieces(data: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0, k = 0; i < data.length; k++) {
    const n = cuts[k % cuts.length]!
    out.push(data.subarray(i, i + n))
    i += n
  }
  return out
}

const tick = () => new Promise<void>(resolve => setImmediate(resolve))

// The fixture -------------------------------------------------------------------------------------

interface Script { response: Buffer[]; mode: 'after' | 'eager'; got: Buffer[] }

async function setup(t: Test, toxics: object[] = []) {
  const logs: { level: number; msg: string }[] = []
  const log = pino({ level: 'debug' }, { write: (s: string) => { logs.push(JSON.parse(s) as { level: number; msg: string }) } })
  // Each connection takes the next script: what to answer, and where to record what it got.
  const scripts: Script[] = []
  const upstream = await listen(t, s => {
    const script = scripts.shift()
    if (!script) { s.destroy(); return }
    s.setNoDelay(true)
    let next = 0
    const writeNext = () => { if (next < script.response.length && !s.destroyed) s.write(script.response[next++]!) }
    s.on('data', c => { script.got.push(c); if (script.mode === 'eager') writeNext() })
    s.on('end', async () => {
      while (next < script.response.length && !s.destroyed) { writeNext(); await tick() }
      s.end()
    })
  })
  const reg = await makeRegistry(t, { log })
  const proxy: Proxy = await reg.create({ name: 'h', listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstream.port}`, protocol: 'http', toxics })
  t.teardown(() => { for (const s of upstream.sockets) s.destroy() })

  /** One connection: the client writes its pieces and FIN, reads until the proxy's FIN; the upstream records. */
  async function exchange(run: Run): Promise<{ sent: Buffer; answered: Buffer; got: Buffer; back: Buffer; error?: string }> {
    const sent = Buffer.concat(run.requests.map(m => m.bytes))
    const answered = Buffer.concat(run.responses.map(m => m.bytes))
    const script: Script = { response: pieces(answered, run.cuts), mode: run.mode, got: [] }
    scripts.push(script)
    const client = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true })
    const back: Buffer[] = []
    let error: string | undefined
    client.on('data', c => back.push(c))
    client.on('error', (e: NodeJS.ErrnoException) => { error = e.code })
    client.on('end', () => client.end())
    const closed = once(client, 'close')
    try {
      await within(once(client, 'connect'), 5000, 'connect')
      for (const p of pieces(sent, run.cuts)) {
        if (!client.write(p)) await within(once(client, 'drain'), 5000, 'drain')
        await tick()
      }
      client.end()
      await within(closed, 5000, 'the link to end')
    } finally {
      client.destroy()
    }
    return { sent, answered, got: Buffer.concat(script.got), back: Buffer.concat(back), ...(error ? { error } : {}) }
  }

  const settle = async () => {
    await until(() => proxy.connections === 0, 5000, 'no link left')
    await until(() => upstream.sockets.size === 0, 5000, 'no upstream socket left')
  }
  return { proxy, logs, exchange, settle }
}

/** Where two buffers first differ, for a readable failure. */
function firstDiff(a: Buffer, x: Buffer): string {
  let i = 0
  while (i < a.length && i < x.length && a[i] === x[i]) i++
  return `${a.length} vs ${x.length} bytes, first difference at ${i}: ${JSON.stringify(a.subarray(i, i + 40).toString('latin1'))} vs ${JSON.stringify(x.subarray(i, i + 40).toString('latin1'))}`
}

// Properties ---------------------------------------------------------------------------------------

t.test('no fault: every byte arrives unchanged and in order both ways, and the link ends', async t => {
  const { proxy, logs, exchange, settle } = await setup(t)
  let bytes = 0
  await fc.assert(fc.asyncProperty(runArb, async run => {
    const r = await exchange(run)
    const where = `\n  run: ${describe(run)}`
    if (r.error) throw new Error(`the client saw ${r.error}${where}`)
    if (!r.got.equals(r.sent)) throw new Error(`client → upstream altered: ${firstDiff(r.got, r.sent)}${where}`)
    if (!r.back.equals(r.answered)) throw new Error(`upstream → client altered: ${firstDiff(r.back, r.answered)}${where}`)
    await settle()
    bytes += r.sent.length + r.answered.length
  }), { seed: SEED, numRuns: RUNS })
  const fallbacks = logs.filter(l => l.msg === 'http link fell back to tcp').length
  t.comment(`${RUNS} links, ${(bytes / 1024).toFixed(0)} KiB through; ${fallbacks} fell back to TCP`)
  t.ok(fallbacks > RUNS / 10 && fallbacks < RUNS, `some links framed, some fell back (${fallbacks} of ${RUNS})`)
  t.same(logs.filter(l => l.level >= 50).map(l => l.msg), [], 'nothing logged at error level')
  t.equal(proxy.connections, 0)
})

t.test('an http_status fault answering some requests: no crash, every link ends', async t => {
  const { proxy, logs, exchange, settle } = await setup(t, [
    { name: 'st', type: 'http_status', toxicity: 0.7, attributes: { status: 503, match: { path_prefix: '/fault' }, body: 'no' } },
    { name: 'dl', type: 'http_delay', toxicity: 0.5, attributes: { delay: 1, match: { method: ['POST', 'PUT'] } } },
  ])
  let answered = 0
  await fc.assert(fc.asyncProperty(runArb, async run => {
    const r = await exchange(run)
    // The client may see its link cut (a fault), but the link must end, and leave nothing behind.
    if (r.back.includes('HTTP/1.1 503 ')) answered++
    await settle()
  }), { seed: SEED + 1, numRuns: Math.ceil(RUNS / 3) })
  t.ok(answered > 0, `${answered} links got coquin's 503`)
  t.same(logs.filter(l => l.level >= 50).map(l => l.msg), [], 'nothing logged at error level')
  t.equal(proxy.connections, 0)
})

t.test('explicit edges: header floods, a response head past 64 KiB, messages cut at FIN, 1 MiB bodies, 100 pipelined', async t => {
  const { exchange, settle } = await setup(t)
  const cases: [string, Buffer, Buffer][] = [
    ['1100 fields', b(`GET / HTTP/1.1\r\n${'X-A: b\r\n'.repeat(1100)}\r\n`), b('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')],
    ['a 70 KiB field', b(`GET / HTTP/1.1\r\nX-Big: ${'v'.repeat(70_000)}\r\n\r\n`), b('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')],
    ['a response head past 64 KiB', b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), b(`HTTP/1.1 200 OK\r\n${'X-A: b\r\n'.repeat(10_000)}\r\n`)],
    ['a head cut at FIN', b('GET / HTTP/1.1\r\nHost: x\r\nX-Cut: ab'), b('HTTP/1.1 400 Bad\r\n\r\n')],
    ['a chunked body cut at FIN', b('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc'), b('')],
    ['a 1 MiB Content-Length body', Buffer.concat([b('PUT / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n'), Buffer.alloc(1 << 20, 7)]), b('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n')],
    ['a huge Content-Length, short body', b('POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\nabc'), b('HTTP/1.1 200 OK\r\n\r\nuntil close')],
    ['100 pipelined requests', b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(100)), b('HTTP/1.1 204 No Content\r\n\r\n'.repeat(100))],
    ['responses with no requests', b(''), b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi')],
  ]
  for (const [what, req, res] of cases) {
    for (const cuts of [[1 << 20], [1, 7, 1500]]) {
      const run: Run = { requests: [{ bytes: req, how: what }], responses: [{ bytes: res, how: what }], cuts, mode: 'after' }
      const r = await exchange(run)
      const problems = [r.error ?? '', r.got.equals(r.sent) ? '' : `up: ${firstDiff(r.got, r.sent)}`, r.back.equals(r.answered) ? '' : `down: ${firstDiff(r.back, r.answered)}`].filter(Boolean)
      t.same(problems, [], `${what}, writes of ${cuts.join('/')}: exact both ways`)
      await settle()
    }
  }
})
