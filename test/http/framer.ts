import t from 'tap'
import { Framer, parseHead, MAX_HEAD_BYTES, type FrameHandler, type Head } from '../../src/protocols/http/framer.js'
import { seededRandom } from '../../src/core/random.js'

type Ev = { e: 'head'; text: string; status?: number; method?: string } | { e: 'body'; text: string } | { e: 'end' } | { e: 'raw'; text: string } | { e: 'error'; reason: string }

/** Runs a framer over chunks; returns the events (adjacent body/raw merged) and every byte handed on. */
function frame(kind: 'request' | 'response', chunks: Buffer[], methods: string[] = [], after?: (f: Framer, ev: Ev[]) => void) {
  const ev: Ev[] = []
  const out: Buffer[] = []
  const queue = [...methods]
  const push = (x: Ev) => {
    const last = ev.at(-1)
    if (last && (x.e === 'body' || x.e === 'raw') && last.e === x.e) (last as { text: string }).text += x.text
    else ev.push(x)
  }
  let status = 0
  const f: Framer = new Framer(kind, {
    head: (h: Head, raw) => {
      out.push(raw)
      if (h.kind === 'response') status = h.status
      push({ e: 'head', text: raw.toString('latin1'), ...(h.kind === 'response' ? { status: h.status } : { method: h.method }) })
    },
    body: b => { out.push(b); push({ e: 'body', text: b.toString('latin1') }) },
    end: () => {
      if (kind === 'response' && (status >= 200 || status === 101)) queue.shift()   // responses pair FIFO
      push({ e: 'end' })
    },
    raw: b => { out.push(b); push({ e: 'raw', text: b.toString('latin1') }) },
    error: reason => { push({ e: 'error', reason }) },
    requestMethod: () => queue[0],
  })
  for (const c of chunks) f.write(c)
  after?.(f, ev)
  f.end()
  return { ev, bytes: Buffer.concat(out), framer: f }
}

const b = (s: string) => Buffer.from(s, 'latin1')

/** Splits a buffer at random points (seeded). */
function splits(buf: Buffer, random: () => number, max = 12): Buffer[] {
  const parts: Buffer[] = []
  let i = 0
  while (i < buf.length) {
    const n = 1 + Math.floor(random() * Math.min(max, buf.length - i))
    parts.push(buf.subarray(i, i + n))
    i += n
  }
  return parts
}

// A corpus of real-world messages -----------------------------------------------------------------

const requests: Record<string, string> = {
  curl: 'GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n',
  chrome: 'GET /app/main.js?v=3 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\nsec-ch-ua: "Chromium";v="122", "Not(A:Brand";v="24"\r\n' +
    'sec-ch-ua-mobile: ?0\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36\r\n' +
    'sec-ch-ua-platform: "Linux"\r\nAccept: */*\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n' +
    'Referer: https://example.com/app/\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n\r\n',
  s3put: 'PUT /bucket-a/photos/cat.jpg HTTP/1.1\r\nHost: s3.eu-west-1.amazonaws.com\r\nx-amz-date: 20240101T000000Z\r\n' +
    'x-amz-content-sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\r\nContent-Type: image/jpeg\r\n' +
    'Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc\r\n' +
    'Content-Length: 5\r\n\r\nhello',
  s3streaming: 'PUT /bucket-b/big HTTP/1.1\r\nHost: bucket-b.s3.amazonaws.com\r\nContent-Encoding: aws-chunked\r\n' +
    'x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\nx-amz-decoded-content-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' +
    '5;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\nhello\r\n' +
    '0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n',
  chunkedTrailers: 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nTrailer: Expires\r\n\r\n' +
    '4;ext=1;q="a b"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum: 1\r\n\r\n',
  obsFold: 'GET /fold HTTP/1.1\r\nHost: x\r\nX-Long: first\r\n  second\r\n\tthird\r\n\r\n',
  bareLF: 'POST /lf HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc',
  http10: 'GET /old HTTP/1.0\r\nUser-Agent: Wget/1.12\r\n\r\n',
  expect: 'PUT /bucket-a/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody',
  leadingCRLF: '\r\n\r\nGET /after-blank HTTP/1.1\r\nHost: x\r\n\r\n',
  absolute: 'GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\n\r\n',
  options: 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  zeroCL: 'POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
  teAndCL: 'POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  lfChunks: 'POST /lfc HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n',
}

const responses: Record<string, [string, string[]]> = {
  simple: ['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', ['GET']],
  s3error: ['HTTP/1.1 503 Slow Down\r\nx-amz-request-id: 4442587FB7D0A2F9\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\nServer: AmazonS3\r\n\r\n' +
    '7e\r\n<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>\r\n0\r\n\r\n', ['PUT']],
  chunkedTrailers: ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Server-Timing\r\n\r\n3;x=y\r\nabc\r\n0\r\nServer-Timing: db;dur=53\r\n\r\n', ['GET']],
  head: ['HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n', ['HEAD']],
  headChunked: ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', ['HEAD']],
  noContent: ['HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n', ['DELETE']],
  notModified: ['HTTP/1.1 304 Not Modified\r\nETag: "abc"\r\nContent-Length: 99\r\n\r\n', ['GET']],
  continue: ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok', ['PUT']],
  early103: ['HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx', ['GET']],
  switching: ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello\x88\x00', ['GET']],
  connect: ['HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01\x02\x00\x01', ['CONNECT']],
  connectRefused: ['HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno', ['CONNECT']],
  http10: ['HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end', ['GET']],
  close: ['HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nread until close', ['GET']],
  noReason: ['HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi', ['GET']],
  pipelined: ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', ['GET', 'GET', 'HEAD']],
}

t.test('every request in the corpus frames, and bytes come out as they went in', async t => {
  for (const [name, text] of Object.entries(requests)) {
    const { ev, bytes } = frame('request', [b(text)])
    t.equal(bytes.toString('latin1'), text, `${name}: byte-exact`)
    t.notOk(ev.some(e => e.e === 'error'), `${name}: no error`)
    t.ok(ev.some(e => e.e === 'end'), `${name}: the message ends`)
  }
})

t.test('request framing details', async t => {
  let r = frame('request', [b(requests.chunkedTrailers!)])
  t.same(r.ev.map(e => e.e), ['head', 'body', 'end'])
  t.match((r.ev[1] as { text: string }).text, /X-Sum: 1\r\n\r\n$/, 'trailers belong to the body')
  r = frame('request', [b(requests.obsFold!)])
  const head = parseHead(b(requests.obsFold!), 'request') as Head
  t.equal(head.fields.find(f => f.lower === 'x-long')?.value, 'first second third', 'obs-fold joined')
  r = frame('request', [b(requests.bareLF! + requests.curl!)])
  t.same(r.ev.map(e => e.e), ['head', 'body', 'end', 'head', 'end'], 'bare LF, then a pipelined request')
  r = frame('request', [b(requests.leadingCRLF!)])
  t.same(r.ev.map(e => e.e), ['raw', 'head', 'end'], 'blank lines before a request pass as raw')
  r = frame('request', [b(requests.teAndCL!)])
  t.same(r.ev.map(e => e.e), ['head', 'body', 'end'], 'Transfer-Encoding wins over Content-Length')
  t.equal((r.ev[1] as { text: string }).text, '3\r\nabc\r\n0\r\n\r\n')
  const all = Object.values(requests).join('')
  r = frame('request', [b(all)])
  t.equal(r.ev.filter(e => e.e === 'head').length, Object.keys(requests).length, 'the whole corpus pipelined')
})

t.test('every response in the corpus frames byte-exact, with the request method deciding', async t => {
  for (const [name, [text, methods]] of Object.entries(responses)) {
    const { ev, bytes } = frame('response', [b(text)], methods)
    t.equal(bytes.toString('latin1'), text, `${name}: byte-exact`)
    t.notOk(ev.some(e => e.e === 'error'), `${name}: no error`)
  }
  const kinds = (name: string) => frame('response', [b(responses[name]![0])], responses[name]![1]).ev.map(e => e.e)
  t.same(kinds('head'), ['head', 'end'], 'HEAD: no body despite Content-Length')
  t.same(kinds('headChunked'), ['head', 'end'], 'HEAD: no body despite chunked')
  t.same(kinds('noContent'), ['head', 'end'])
  t.same(kinds('notModified'), ['head', 'end'], '304: no body despite Content-Length')
  t.same(kinds('continue'), ['head', 'end', 'head', 'body', 'end'], '100 Continue is a message of its own')
  t.same(kinds('switching'), ['head', 'end', 'raw'], 'after 101 the stream is raw')
  t.same(kinds('connect'), ['head', 'end', 'raw'], 'after 2xx to CONNECT the stream is raw')
  t.same(kinds('connectRefused'), ['head', 'body', 'end'], 'a refused CONNECT stays HTTP')
  t.same(kinds('http10'), ['head', 'body', 'end'], 'HTTP/1.0 without length: read until close')
  t.same(kinds('close'), ['head', 'body', 'end'])
  t.same(kinds('pipelined'), ['head', 'body', 'end', 'head', 'end', 'head', 'end'], 'pipelined, the last for HEAD')
})

t.test('random splits of every stream give the same framing (seeded)', async t => {
  const random = seededRandom(7)
  const cases: [string, 'request' | 'response', string, string[]][] = [
    ['all requests', 'request', Object.values(requests).join(''), []],
    ...Object.entries(responses).map(([n, [text, m]]) => [n, 'response', text, m] as [string, 'response', string, string[]]),
    ['all pipelined responses', 'response',
      Object.values(responses).filter(([x, m]) => m.length === 1 && !/^HTTP\/1\.[01] (101|200 Conn|200 OK\r\nConnection: close)|^HTTP\/1\.0/.test(x) && m[0] !== 'CONNECT').map(([x]) => x).join(''),
      Object.values(responses).filter(([x, m]) => m.length === 1 && !/^HTTP\/1\.[01] (101|200 Conn|200 OK\r\nConnection: close)|^HTTP\/1\.0/.test(x) && m[0] !== 'CONNECT').map(([, m]) => m[0]!)],
  ]
  for (const [name, kind, text, methods] of cases) {
    const whole = frame(kind, [b(text)], methods)
    for (let i = 0; i < 60; i++) {
      const parts = splits(b(text), random, i < 20 ? 3 : 40)
      const got = frame(kind, parts, methods)
      if (got.bytes.toString('latin1') !== text) { t.fail(`${name}: bytes differ with split ${i}`); break }
      if (JSON.stringify(got.ev) !== JSON.stringify(whole.ev)) { t.same(got.ev, whole.ev, `${name}: framing differs with split ${i}`); break }
    }
    t.pass(`${name}: 60 splits agree`)
  }
})

t.test('what cannot be framed falls back once, and no byte is lost', async t => {
  const cases: [string, 'request' | 'response', string][] = [
    ['TLS ClientHello', 'request', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'],
    ['redis', 'request', '*1\r\n$4\r\nPING\r\n'],
    ['HTTP/2 preface', 'request', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['HTTP/0.9', 'request', 'GET /\r\n'],
    ['bad content-length', 'request', 'POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\nabc'],
    ['conflicting content-length', 'request', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['bad chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc'],
    ['chunk without CRLF', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n'],
    ['huge chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n'],
    ['request gzip only', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxxxx'],
    ['bad status line', 'response', 'HTTP/1.1 2000 OK\r\n\r\n'],
    ['not a response', 'response', 'SSH-2.0-OpenSSH_9.6\r\n'],
  ]
  for (const [name, kind, text] of cases) {
    const { ev, bytes } = frame(kind, [b(text)], ['GET'])
    t.equal(bytes.toString('latin1'), text, `${name}: every byte handed on`)
    t.equal(ev.filter(e => e.e === 'error').length, 1, `${name}: one error`)
  }
  // a binary protocol fails at its first byte, without waiting for a line end
  const r = frame('request', [b('\x16\x03')])
  t.equal(r.ev[0]?.e, 'error')
  // too large a head
  const big = b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`)
  const rb = frame('request', splits(big, seededRandom(3), 5000))
  t.equal(rb.bytes.length, big.length)
  t.match(rb.ev[0], { e: 'error', reason: 'head too large' })
  // as many fields as fit in the head: node:http counts bytes, not fields (issue 17: 1,001 fields bypassed faults)
  const many = b(`GET / HTTP/1.1\r\n${'X: y\r\n'.repeat(5000)}\r\n`)
  t.same(frame('request', [many]).ev.map(e => e.e), ['head', 'end'], '5,000 fields: one head')
  t.same(frame('request', splits(many, seededRandom(4), 700)).ev.map(e => e.e), ['head', 'end'], 'the same, in pieces')
  // lengths with leading zeros, as llhttp reads them
  const zeros = frame('request', [b('POST / HTTP/1.1\r\nContent-Length: 0000000000000000003\r\n\r\nabcGET / HTTP/1.1\r\n\r\n')])
  t.same(zeros.ev.map(e => e.e), ['head', 'body', 'end', 'head', 'end'], 'Content-Length 0…03 is 3')
  const chunkZeros = frame('request', [b('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000003\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n')])
  t.same(chunkZeros.ev.map(e => e.e).filter(e => e !== 'body'), ['head', 'end', 'head', 'end'], 'chunk size 0…03 is 3')
  t.match(frame('request', [b('POST / HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n')]).ev[0], { e: 'error', reason: 'content-length too large' })
  // a malformed field line does not stop framing: it is kept and ignored
  const odd = 'GET / HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n'
  const ro = frame('request', [b(odd)])
  t.same(ro.ev.map(e => e.e), ['head', 'end'])
  t.equal(ro.bytes.toString('latin1'), odd)
})

t.test('an upgrade request waits for its response: tunnel or go on', async t => {
  const up = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
  let r = frame('request', [b(up + '\x81\x85mask')], [], f => { t.ok(f.waiting); t.equal(f.buffered, 6); f.tunnel() })
  t.same(r.ev.map(e => e.e), ['head', 'end', 'raw'])
  t.equal(r.bytes.toString('latin1'), up + '\x81\x85mask')
  r = frame('request', [b(up + requests.curl!)], [], f => f.proceed())
  t.same(r.ev.map(e => e.e), ['head', 'end', 'head', 'end'], 'declined: what follows is HTTP')
  const connect = 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'
  r = frame('request', [b(connect), b('\x16\x03\x01')], [], f => { t.ok(f.waiting); f.tunnel() })
  t.same(r.ev.map(e => e.e), ['head', 'end', 'raw'])
  // too much data while waiting: give up framing, lose nothing
  const flood = Buffer.alloc(MAX_HEAD_BYTES + 10, 0x61)
  r = frame('request', [b(up), flood])
  t.equal(r.bytes.length, up.length + flood.length)
  t.match(r.ev.find(e => e.e === 'error'), { reason: /upgrade/ })
})

t.test('end of stream: a read-until-close body ends, a partial head is handed on', async t => {
  let r = frame('response', [b('HTTP/1.0 200 OK\r\n\r\nabc')], ['GET'])
  t.same(r.ev.map(e => e.e), ['head', 'body', 'end'])
  r = frame('request', [b('GET / HTTP/1.1\r\nHost: x')])
  t.same(r.ev, [{ e: 'raw', text: 'GET / HTTP/1.1\r\nHost: x' }])
})

t.test('fuzz: garbage and mutated streams never throw and never lose a byte (seeded)', async t => {
  const random = seededRandom(12345)
  const valid = b(Object.values(requests).join(''))
  const validRes = b(Object.values(responses).map(([x]) => x).join(''))
  const alphabet = b('GET /HTTP1.0\r\n:;0123456789abcdefABCDEF chunked Content-Length Transfer-Encoding\x00\xff')
  let errors = 0
  for (let i = 0; i < 1500; i++) {
    let input: Buffer
    const kind = random() < 0.5 ? 'request' : 'response'
    if (i % 3 === 0) {
      input = Buffer.alloc(1 + Math.floor(random() * 300))
      for (let k = 0; k < input.length; k++) input[k] = random() < 0.7 ? alphabet[Math.floor(random() * alphabet.length)]! : Math.floor(random() * 256)
    } else {
      input = Buffer.from(kind === 'request' ? valid : validRes)
      const flips = 1 + Math.floor(random() * 4)
      for (let k = 0; k < flips; k++) input[Math.floor(random() * input.length)] = alphabet[Math.floor(random() * alphabet.length)]!
    }
    let res
    try {
      res = frame(kind, splits(input, random, 64), Array(50).fill('GET'))
    } catch (err) {
      t.fail(`threw on case ${i}: ${(err as Error).message}`)
      break
    }
    if (!res.bytes.equals(input)) { t.fail(`case ${i}: bytes lost or changed`); break }
    if (res.ev.filter(e => e.e === 'error').length > 1) { t.fail(`case ${i}: more than one error`); break }
    if (res.ev.some(e => e.e === 'error')) errors++
  }
  t.ok(errors > 100, `fallbacks seen (${errors})`)
  t.pass('1500 cases')
})

t.test('start lines are read exactly as the patterns of RFC 9112 read them, whole or byte by byte (seeded)', async t => {
  // The patterns the framer's byte-level reading must agree with.
  const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([^ ]+) +HTTP\/(\d)\.(\d) *$/
  const STATUS_LINE = /^HTTP\/(\d)\.(\d) +(\d{3})(?: (.*))?$/
  const expected = (kind: 'request' | 'response', line: string): string => {
    const text = line                                      // what comes before the line's own CRLF
    if (kind === 'request') {
      const m = REQUEST_LINE.exec(text)
      if (!m) return 'bad request line'
      if (m[3] !== '1') return `unsupported version HTTP/${m[3]}.${m[4]}`
      return `request ${m[1]} ${m[2]} 1.${m[4]}`
    }
    const m = STATUS_LINE.exec(text)
    if (!m) return 'bad status line'
    if (m[1] !== '1') return `unsupported version HTTP/${m[1]}.${m[2]}`
    return `response ${Number(m[3])} [${m[4] ?? ''}] 1.${m[2]}`
  }
  const got = (h: Head | string): string => typeof h === 'string' ? h
    : h.kind === 'request' ? `request ${h.method} ${h.target} ${h.version}` : `response ${h.status} [${h.reason}] ${h.version}`
  const pieces = ['GET', 'PUT', 'DELETE', 'M-SEARCH', 'get', ' ', ' ', '  ', '/', '/a?b=c', '*', 'x:1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0',
    'HTTP/1.', 'HTTP/11', 'http/1.1', '200', '404', '20', '2000', 'OK', 'Not Found', '\r', '\t', '\x85', '\xa0', '\x00', '"', '9', '.']
  const random = seededRandom(2024)
  const pick = () => pieces[Math.floor(random() * pieces.length)]!
  const lines: [('request' | 'response'), string][] = [
    ['request', 'GET / HTTP/1.1'], ['request', 'GET  /a   HTTP/1.0  '], ['request', 'GET /\r HTTP/1.1'], ['request', 'GET / HTTP/1.1\r'],
    ['request', 'GET / HTTP/1.1 \r'], ['request', 'CONNECT h:443 HTTP/1.1'], ['request', 'GET / HTTP/3.0'], ['request', 'GET\t/ HTTP/1.1'],
    ['response', 'HTTP/1.1 200 OK'], ['response', 'HTTP/1.1   204'], ['response', 'HTTP/1.1 200 '], ['response', 'HTTP/1.1 200  two  spaces'],
    ['response', 'HTTP/1.1 200 O\rK'], ['response', 'HTTP/1.1 200\tOK'], ['response', 'HTTP/2.0 200 OK'], ['response', 'HTTP/1.1 2000 OK'],
  ]
  for (let i = 0; i < 3000; i++) {
    const kind = random() < 0.5 ? 'request' : 'response'
    const parts = kind === 'request'
      ? [pick(), random() < 0.8 ? ' ' : pick(), pick(), random() < 0.8 ? ' ' : pick(), random() < 0.7 ? 'HTTP/1.1' : pick()]
      : [random() < 0.7 ? 'HTTP/1.1' : pick(), random() < 0.8 ? ' ' : pick(), random() < 0.6 ? '200' : pick(), random() < 0.5 ? ' ' : '', pick()]
    if (random() < 0.3) parts.push(pick())
    lines.push([kind, parts.join('')])
  }
  let heads = 0
  for (const [kind, line] of lines) {
    const message = b(`${line}\r\nHost: x\r\n\r\n`)
    const want = expected(kind, line)
    const parsed = got(parseHead(message, kind))
    if (parsed !== want) { t.equal(parsed, want, `parseHead: ${JSON.stringify(line)}`); return }
    const whole = frame(kind, [message], ['GET'])
    const bytewise = frame(kind, splits(message, () => 0, 1), ['GET'])
    if (JSON.stringify(whole.ev) !== JSON.stringify(bytewise.ev)) { t.same(whole.ev, bytewise.ev, `whole = byte by byte: ${JSON.stringify(line)}`); return }
    if (!whole.bytes.equals(message)) { t.fail(`bytes: ${JSON.stringify(line)}`); return }
    if (!want.includes(' ') || want.startsWith('unsupported') || want.startsWith('bad')) continue
    heads++
    const h = whole.ev[0]
    if (h?.e !== 'head') { t.fail(`framed: ${JSON.stringify(line)}`); return }
  }
  t.ok(heads > 300, `heads read (${heads}) and refused (${lines.length - heads})`)
})

t.test('a head read in one pass equals the one read byte by byte and by parseHead', async t => {
  const seen: Head[] = []
  const f = new Framer('request', { head: h => { seen.push(h) }, body() {}, end() {}, raw() {}, error() {} })
  const text = requests.chrome! + requests.s3put! + 'GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n' + 'POST /c HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n'
  f.write(b(text))
  const g = new Framer('request', { head: h => { seen.push(h) }, body() {}, end() {}, raw() {}, error() {} })
  for (const part of splits(b(text), () => 0, 1)) g.write(part)
  t.equal(seen.length, 8)
  const view = (h: Head) => h.kind === 'request' && {
    method: h.method, target: h.target, version: h.version, keepAlive: h.keepAlive, chunked: h.chunked, contentLength: h.contentLength,
    upgrade: h.upgrade, expectContinue: h.expectContinue, raw: h.raw.toString('latin1'), startEnd: h.startEnd, fieldsEnd: h.fieldsEnd,
    fields: h.fields.map(x => `${x.name}=${x.value}@${x.start}-${x.end}`),
  }
  for (let i = 0; i < 4; i++) {
    t.same(view(seen[i]!), view(seen[i + 4]!), `head ${i}: one pass = byte by byte`)
    t.same(view(seen[i]!), view(parseHead(seen[i]!.raw, 'request') as Head), `head ${i}: one pass = parseHead`)
  }
  t.match(view(seen[2]!), { version: '1.0', keepAlive: true })
  t.match(view(seen[3]!), { chunked: true, contentLength: -1 })
})

t.test('a handler that takes ranges (headAt, bodyAt, rawAt) sees the same bytes and events as one that takes slices', async t => {
  const random = seededRandom(99)
  const run = (kind: 'request' | 'response', chunks: Buffer[], methods: string[], ranges: boolean) => {
    const ev: string[] = []
    const queue = [...methods]
    let status = 0
    const at = (e: string) => (bytes: Buffer, from: number, to: number) => {
      if (to <= from || from < 0 || to > bytes.length) throw new Error(`bad range ${from}-${to} of ${bytes.length}`)
      ev.push(`${e}:${bytes.toString('latin1', from, to)}`)
    }
    const handler: FrameHandler = {
      head: (h, raw) => { status = h.kind === 'response' ? h.status : 0; ev.push(`head:${raw.toString('latin1')}`) },
      body: b => ev.push(`body:${b.toString('latin1')}`),
      raw: b => ev.push(`raw:${b.toString('latin1')}`),
      end: () => { if (kind === 'response' && (status >= 200 || status === 101)) queue.shift(); ev.push('end') },
      error: r => ev.push(`error:${r}`),
      requestMethod: () => queue[0],
      ...ranges ? {
        headAt: (h: Head, bytes: Buffer, from: number, to: number) => {
          status = h.kind === 'response' ? h.status : 0
          if (!h.raw.equals(bytes.subarray(from, to))) throw new Error('head.raw is not the range')
          at('head')(bytes, from, to)
        },
        bodyAt: at('body'), rawAt: at('raw'),
      } : {},
    }
    const f = new Framer(kind, handler)
    for (const c of chunks) f.write(c)
    f.end()
    // adjacent body and raw events merged: splits may cut them anywhere
    return ev.reduce<string[]>((acc, e) => {
      const last = acc.at(-1)
      const k = e.slice(0, e.indexOf(':') + 1)
      if (last !== undefined && (k === 'body:' || k === 'raw:') && last.startsWith(k)) acc[acc.length - 1] = last + e.slice(k.length)
      else acc.push(e)
      return acc
    }, [])
  }
  const cases: ['request' | 'response', string, string[]][] = [
    ['request', Object.values(requests).join(''), []],
    ['request', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01 not http', []],
    ['request', 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85mask', []],
    ...Object.values(responses).map(([x, m]) => ['response', x, m] as ['response', string, string[]]),
  ]
  for (const [kind, text, methods] of cases) {
    const want = run(kind, [b(text)], methods, false)
    for (let i = 0; i < 40; i++) {
      const parts = splits(b(text), random, i < 10 ? 4 : 80)
      const got = run(kind, parts, methods, true)
      if (JSON.stringify(got) !== JSON.stringify(want)) { t.same(got, want, `${kind} ${JSON.stringify(text.slice(0, 30))} split ${i}`); return }
    }
  }
  t.pass('ranges and slices agree under random splits')
})

t.test('framing fields are found by name in any case, with spaces or tabs before the colon, and no other line is (seeded)', async t => {
  const names = ['Content-Length', 'content-length', 'CONTENT-LENGTH', 'Content-Length ', 'Content-Length\t', 'Content-Lengthx', 'X-Content-Length',
    'Content-Len', 'Content-Type', 'Connection', 'connection ', 'Connectionx', 'Transfer-Encoding', 'transfer-encoding  ', 'TE', 'Upgrade', 'upgrade',
    'Expect', 'expect\t', 'Expectation', 'Host', 'C', 'c', 'U', 'E', 'T', '', ' Content-Length']
  const values = ['3', ' 3 ', '3, 3', '3,4', 'x', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'close', 'Keep-Alive', 'keep-alive, Upgrade', 'upgrade',
    '100-continue', '', ' 7\t']
  // The framing a field list means (RFC 9112 6.1-6.3, 9.6), read from strings: the model the byte-level reading must match.
  const model = (fields: [string, string][]): string => {
    let cl = -1, codings = '', close = false, upgradeToken = false, hasUpgrade = false, expect = false
    for (const [rawName, rawValue] of fields) {
      const name = rawName.replace(/[ \t]+$/, '').toLowerCase()
      const value = rawValue.trim()
      if (name === 'content-length') {
        for (const part of value.split(',')) {
          const v = part.trim()
          if (!/^\d{1,15}$/.test(v)) return 'bad content-length'
          if (cl >= 0 && Number(v) !== cl) return 'conflicting content-length'
          cl = Number(v)
        }
      } else if (name === 'transfer-encoding') codings = codings === '' ? value : `${codings},${value}`
      else if (name === 'connection') {
        for (const p of value.split(',').map(x => x.trim().toLowerCase())) { if (p === 'close') close = true; if (p === 'upgrade') upgradeToken = true }
      } else if (name === 'upgrade') hasUpgrade = true
      else if (name === 'expect' && value.toLowerCase() === '100-continue') expect = true
    }
    const chunked = codings !== '' && codings.split(',').at(-1)!.trim().toLowerCase() === 'chunked'
    if (codings.trim() !== '' && !chunked) return 'request transfer-encoding without chunked'
    return `cl=${chunked ? -1 : cl} chunked=${chunked} keepAlive=${!close} upgrade=${hasUpgrade && upgradeToken} expect=${expect}`
  }
  const random = seededRandom(4242)
  const pick = <T>(a: T[]) => a[Math.floor(random() * a.length)]!
  let framed = 0
  for (let i = 0; i < 2000; i++) {
    const fields: [string, string][] = Array.from({ length: 1 + Math.floor(random() * 4) }, () => [pick(names), pick(values)])
    if (fields.some(([n]) => n.startsWith(' '))) continue                       // a folded line: parsed apart, as strings
    const text = `POST / HTTP/1.1\r\n${fields.map(([n, v]) => `${n}:${v}\r\n`).join('')}\r\n`
    const h = parseHead(b(text), 'request')
    const got = typeof h === 'string' ? h : h.kind === 'request'
      ? `cl=${h.contentLength} chunked=${h.chunked} keepAlive=${h.keepAlive} upgrade=${h.upgrade} expect=${h.expectContinue}` : 'response?'
    const want = model(fields)
    if (got !== want) { t.equal(got, want, JSON.stringify(text)); return }
    if (typeof h !== 'string') framed++
  }
  t.ok(framed > 500, `${framed} heads framed as the model says, the rest refused as it says`)
})
