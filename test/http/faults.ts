import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import { ManualClock, exchange, httpProxy, httpServer, rawClient, request } from '../helpers/http-harness.js'
import { until, within } from '../helpers/net.js'

type T = { teardown(fn: () => unknown): void }

/** An upstream that records what it got (method, url, headers) and answers `body` for each request. */
async function recorder(t: T, respond?: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; raw: string[] }[] = []
  const server = await httpServer(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, raw: req.rawHeaders })
      if (respond) respond(req, res)
      else res.end(`body of ${req.url}`)
    })
  })
  return { server, seen }
}

/** A raw connection that keeps everything it receives. */
async function rawSocket(t: T, port: number) {
  const s = net.connect({ port, host: '127.0.0.1' })
  t.teardown(() => s.destroy())
  await once(s, 'connect')
  const state = { data: Buffer.alloc(0), closed: false, error: undefined as string | undefined, socket: s }
  s.on('data', c => { state.data = Buffer.concat([state.data, c]) })
  s.on('error', (e: NodeJS.ErrnoException) => { state.error = e.code })
  s.on('close', () => { state.closed = true })
  return state
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`

t.test('http_delay phase request: held for delay ms, in order with what follows', async t => {
  const clock = new ManualClock()
  const { server, seen } = await recorder(t)
  const h = await httpProxy(t, server.port, { clock, faults: [{ type: 'http_delay', attributes: { delay: 100, match: { path: '/slow' } } }] })
  const c = await rawSocket(t, h.port)
  c.socket.write(get('/slow') + get('/fast'))
  await until(() => clock.pending === 1, 5000, 'the request held')
  clock.advance(99)
  await new Promise(r => setImmediate(r))
  t.equal(seen.length, 0, 'nothing forwarded before 100 ms, not even the request behind it')
  clock.advance(1)
  await until(() => c.data.toString().includes('body of /fast'))
  t.same(seen.map(s => s.url), ['/slow', '/fast'], 'order kept')
  t.equal(h.applied.get('http_delay_downstream'), 1)
})

t.test('http_delay phase response_head and response_body', async t => {
  const clock = new ManualClock()
  const { server } = await recorder(t)
  const h = await httpProxy(t, server.port, { clock, faults: [
    { name: 'head', type: 'http_delay', attributes: { delay: 50, phase: 'response_head', match: { path: '/h' } } },
    { name: 'body', type: 'http_delay', attributes: { delay: 70, phase: 'response_body', match: { path: '/b' } } },
  ] })
  const c = await rawSocket(t, h.port)
  c.socket.write(get('/h'))
  await until(() => clock.pending === 1, 5000, 'the response held')
  t.equal(c.data.length, 0, 'no byte of the response yet')
  clock.advance(50)
  await until(() => c.data.toString().endsWith('body of /h'))
  c.data = Buffer.alloc(0)
  c.socket.write(get('/b'))
  await until(() => c.data.includes('\r\n\r\n'), 5000, 'the head')
  t.notMatch(c.data.toString(), /body of/, 'the head came at once, the body waits')
  t.equal(clock.pending, 1)
  clock.advance(70)
  await until(() => c.data.toString().endsWith('body of /b'))
  t.pass('the body followed')
})

t.test('http_delay on a request coquin answers delays the answer', async t => {
  const clock = new ManualClock()
  const { server } = await recorder(t)
  const h = await httpProxy(t, server.port, { clock, faults: [
    { type: 'http_status', attributes: { status: 429 } },
    { type: 'http_delay', attributes: { delay: 30 } },
  ] })
  const c = await rawSocket(t, h.port)
  c.socket.write(get('/x'))
  await until(() => clock.pending === 1, 5000, 'the answer held')
  t.equal(c.data.length, 0)
  clock.advance(30)
  await until(() => c.data.toString().startsWith('HTTP/1.1 429 Too Many Requests'))
  t.pass()
})

t.test('http_abort before_response: the upstream did the work, the client gets a reset and no byte', async t => {
  const { server, seen } = await recorder(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_abort', attributes: { match: { method: 'PUT' } } }] })
  const r = await within(exchange(t, h.port, 'PUT /bucket-a/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc', { end: false }), 5000, 'close')
  t.equal(r.data.length, 0, 'no response byte')
  t.same(seen.map(s => `${s.method} ${s.url}`), ['PUT /bucket-a/k'], 'the request reached the upstream')
  t.same(h.ends, ['reset:http_abort'])
})

t.test('http_abort after_head (fin) and after_bytes', async t => {
  const big = 'z'.repeat(1000)
  const { server } = await recorder(t, (req, res) => {
    if (req.url === '/chunked') { res.write('aaaa'); res.write('bbbb'); res.end(); return }
    res.end(big)
  })
  const h = await httpProxy(t, server.port, { faults: [
    { type: 'http_abort', attributes: { phase: 'after_head', mode: 'fin', match: { path: '/head' } } },
    { name: 'bytes', type: 'http_abort', attributes: { phase: 'after_bytes', bytes: 10, mode: 'fin', match: { path: '/bytes' } } },
    { name: 'chunked', type: 'http_abort', attributes: { phase: 'after_bytes', bytes: 6, mode: 'fin', match: { path: '/chunked' } } },
    { name: 'long', type: 'http_abort', attributes: { phase: 'after_bytes', bytes: 5000, mode: 'fin', match: { path: '/short' } } },
  ] })
  let r = await within(exchange(t, h.port, get('/head'), { end: false }), 5000, 'close')
  t.match(r.data.toString(), /^HTTP\/1\.1 200 OK\r\n[^]*Content-Length: 1000\r\n\r\n$/, 'the head only')
  t.equal(r.error, undefined, 'closed with a FIN')
  r = await within(exchange(t, h.port, get('/bytes'), { end: false }), 5000, 'close')
  t.equal(r.data.toString().split('\r\n\r\n')[1], 'z'.repeat(10), '10 body bytes, then closed')
  r = await within(exchange(t, h.port, get('/chunked'), { end: false }), 5000, 'close')
  t.equal(r.data.toString().split('\r\n\r\n')[1], '4\r\naaa', '6 bytes of the chunked body as on the wire')
  r = await within(exchange(t, h.port, get('/short'), { end: false }), 5000, 'close')
  t.equal(r.data.toString().split('\r\n\r\n')[1], big, 'a shorter body passes whole, then the close')
})

t.test('http_header: request and response fields set and removed; the rest byte-exact', async t => {
  const { server, seen } = await recorder(t, (_req, res) => {
    res.setHeader('Server', 'upstream/1.0')
    res.setHeader('X-Keep', 'yes')
    res.end('payload')
  })
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_header', attributes: {
    match: { path_prefix: '/api/' },
    request: { set: { Host: 'rewritten.example', 'X-Added': 'a' }, remove: ['authorization'] },
    response: { set: { 'X-Injected': '1' }, remove: ['server', 'Connection', 'keep-alive'] },
  } }] })
  const c = await rawClient(t, h.port)
  const res = (await c.send('GET /api/x HTTP/1.1\r\nHost: orig\r\nAuthorization: secret\r\nX-Other: kept\r\n\r\n'))!.toString()
  t.same(seen[0]?.raw, ['X-Other', 'kept', 'Host', 'rewritten.example', 'X-Added', 'a'])
  t.equal(res, 'HTTP/1.1 200 OK\r\nX-Keep: yes\r\nContent-Length: 7\r\nX-Injected: 1\r\n\r\npayload')
  const untouched = (await c.send('GET /other HTTP/1.1\r\nHost: orig\r\nAuthorization: secret\r\n\r\n'))!.toString()
  t.match(untouched, /^HTTP\/1\.1 200 OK\r\nServer: upstream\/1\.0\r\nX-Keep: yes\r\n/, 'not matching: untouched')
  t.same(seen[1]?.raw, ['Host', 'orig', 'Authorization', 'secret'])
  t.throws(() => h.add({ type: 'http_header', attributes: { request: { set: { 'Bad Name': 'x' } } } }), { code: 'COQUIN_ERR_TOXIC_ATTRIBUTES' })
})

t.test('caller-chosen faults: only with headerFaults, applied to that request, stripped before forwarding', async t => {
  const clock = new ManualClock()
  const { server, seen } = await recorder(t)
  const off = await httpProxy(t, server.port)
  const r0 = await request(off.port, { path: '/off', headers: { 'x-coquin-fault-status': '503' } })
  t.equal(r0.status, 200, 'off by default')
  t.equal(seen[0]?.headers['x-coquin-fault-status'], '503', 'and the header passes untouched')

  const h = await httpProxy(t, server.port, { clock, headerFaults: true })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const r1 = await request(h.port, { agent, path: '/s', headers: { 'X-Coquin-Fault-Status': '503' } })
  t.equal(r1.status, 503)
  t.equal(seen.length, 1, 'not forwarded')
  const r2p = request(h.port, { agent, path: '/d', headers: { 'x-coquin-fault-delay': '200', 'x-other': 'o' } })
  await until(() => clock.pending === 1, 5000, 'the request held')
  clock.advance(200)
  const r2 = await r2p
  t.equal(r2.status, 200)
  t.same(seen[1]?.raw, ['x-other', 'o', 'Host', `127.0.0.1:${h.port}`, 'Connection', 'keep-alive'], 'the fault header stripped')
  const r3 = await request(h.port, { agent, path: '/a', headers: { 'x-coquin-fault-abort': 'rst' } }).then(() => 'ok', e => e.code)
  t.equal(r3, 'ECONNRESET')
  t.equal(seen[2]?.url, '/a', 'forwarded before the abort')
  t.notOk(seen[2]?.headers['x-coquin-fault-abort'])
  const r4 = await request(h.port, { agent, path: '/bad', headers: { 'x-coquin-fault-status': 'lots' } })
  t.equal(r4.status, 200, 'a bad value does nothing')
  t.notOk(seen.at(-1)?.headers['x-coquin-fault-status'], 'but is stripped')
})

t.test('HTTP faults added and removed on an open keep-alive connection apply from the next request', async t => {
  const { server } = await recorder(t)
  const h = await httpProxy(t, server.port)
  const c = await rawClient(t, h.port)
  t.match((await c.send(get('/1')))?.toString(), /^HTTP\/1\.1 200/)
  h.add({ name: 'live', type: 'http_status', attributes: { status: 418 } })
  t.match((await c.send(get('/2')))?.toString(), /^HTTP\/1\.1 418 I'm a Teapot/)
  h.remove('live')
  t.match((await c.send(get('/3')))?.toString(), /^HTTP\/1\.1 200/)
  t.equal(h.opened, 1)
})

t.test('large bodies both ways pass byte-exact, with an HTTP fault present', async t => {
  const size = 16 << 20
  const server = await httpServer(t, (req, res) => {
    const hash = createHash('sha256')
    let n = 0
    req.on('data', c => { hash.update(c); n += c.length })
    req.on('end', () => {
      const block = Buffer.alloc(1 << 20, n % 251)
      res.setHeader('X-Got', `${n} ${hash.digest('hex')}`)
      res.setHeader('Content-Length', size)
      let sent = 0
      const pump = () => {
        while (sent < size) { sent += block.length; if (!res.write(block)) { res.once('drain', pump); return } }
        res.end()
      }
      pump()
    })
  })
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_delay', attributes: { delay: 5, match: { path: '/never' } } }] })
  const upload = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4096) upload[i] = i % 253
  const want = createHash('sha256').update(upload).digest('hex')
  const r = await new Promise<{ got: string; bytes: number }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, method: 'PUT', path: '/big' }, res => {
      let bytes = 0
      res.on('data', c => { bytes += c.length })
      res.on('end', () => resolve({ got: String(res.headers['x-got']), bytes }))
    })
    req.on('error', reject)
    req.end(upload)
  })
  t.equal(r.got, `${size} ${want}`, 'the upload arrived byte-exact')
  t.equal(r.bytes, size, 'the download arrived whole')
})

t.test('backpressure: a delayed request holds at most about the high-water mark of its upload', async t => {
  const clock = new ManualClock()
  let received = 0
  const server = await httpServer(t, (req, res) => { req.on('data', c => { received += c.length }); req.on('end', () => res.end(String(received))) })
  const h = await httpProxy(t, server.port, { clock, faults: [{ type: 'http_delay', attributes: { delay: 1000 } }] })
  const size = 32 << 20
  const c = net.connect({ port: h.port, host: '127.0.0.1' })
  t.teardown(() => c.destroy())
  await once(c, 'connect')
  const reply: Buffer[] = []
  c.on('data', x => reply.push(x))
  c.write(`PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`)
  const block = Buffer.alloc(1 << 20, 7)
  let sent = 0
  const writer = (async () => {
    while (sent < size) { sent += block.length; if (!c.write(block)) await once(c, 'drain') }
  })()
  await until(() => clock.pending === 1, 5000, 'the request held')
  // the client pushes until the proxy pauses reading at the mark; more turns of the loop change nothing
  await until(() => h.held() > 512 * 1024, 10_000, 'the mark')
  for (let i = 0; i < 200; i++) await new Promise(r => setImmediate(r))
  t.ok(h.held() <= 1 << 20, `held ${h.held()} bytes of a ${size}-byte upload`)
  t.equal(received, 0, 'nothing forwarded yet')
  t.ok(sent < size, 'the client is blocked by backpressure')
  clock.advance(1000)
  await writer
  await until(() => Buffer.concat(reply).toString().endsWith(String(size)), 20_000, 'the response')
  t.equal(received, size, 'all of it arrived once released')
})
