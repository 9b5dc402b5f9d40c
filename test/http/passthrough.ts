import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync } from 'node:fs'
import { exchange, httpProxy, httpServer, rawServer, request } from '../helpers/http-harness.js'
import { until, within } from '../helpers/net.js'
import { seededRandom } from '../../src/core/random.js'

/** A raw upstream: waits for exactly `expect` bytes, then writes `reply` in random pieces and ends. */
async function scripted(t: { teardown(fn: () => unknown): void }, expect: Buffer, reply: Buffer, seed = 1) {
  const got: Buffer[] = []
  const server = await rawServer(t, s => {
    let n = 0
    s.on('data', c => {
      got.push(c); n += c.length
      if (n !== expect.length) return
      const random = seededRandom(seed)
      let i = 0
      const step = () => {
        if (s.destroyed) return
        if (i >= reply.length) { s.end(); return }
        const k = 1 + Math.floor(random() * 97)
        s.write(reply.subarray(i, i + k))
        i += k
        setImmediate(step)
      }
      step()
    })
  })
  return { server, received: () => Buffer.concat(got) }
}

const b = (s: string) => Buffer.from(s, 'latin1')

// Requests and their responses, pipelined on one connection: chunked, HEAD, 204, 304, 100-continue, trailers.
const reqs = [
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;sig=abc\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n',
  'DELETE /gone HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /cached HTTP/1.1\r\nHost: x\r\nIf-None-Match: "e"\r\n\r\n',
  'PUT /bucket-a/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody',
  'GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n',
]
const resps = [
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: application/octet-stream\r\n\r\n',
  'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\nContent-Length: 77\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;x\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 9\r\n\r\n',
]

t.test('pipelined chunked, HEAD, 204, 304, 100-continue and trailers pass byte-exact both ways', async t => {
  const reqBytes = b(reqs.join(''))
  const resBytes = b(resps.join(''))
  const up = await scripted(t, reqBytes, resBytes)
  // a fault that matches nothing here: every request goes through the decision path
  const h = await httpProxy(t, up.server.port, { faults: [{ type: 'http_status', attributes: { match: { path: '/nothing' } } }] })
  const { data, error } = await within(exchange(t, h.port, reqBytes, { end: false }), 10_000, 'responses')
  t.equal(error, undefined)
  t.ok(up.received().equals(reqBytes), 'the upstream got the requests byte-exact')
  t.ok(data.equals(resBytes), 'the client got the responses byte-exact')
  t.same(h.fallbacks, [], 'framed all along')
  t.equal(h.applied.size, 0)
  await until(() => h.open === 0)
})

t.test('keep-alive node:http client: methods, bodies, statuses', async t => {
  const server = await httpServer(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      if (req.url === '/204') { res.writeHead(204).end(); return }
      if (req.url === '/304') { res.writeHead(304, { ETag: '"x"' }).end(); return }
      if (req.url === '/chunked') { res.write('part1-'); res.write('part2'); res.end(); return }
      res.setHeader('Content-Type', 'text/plain')
      res.end(`${req.method} ${req.url} ${body}`)
    })
  })
  const h = await httpProxy(t, server.port)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())
  const r1 = await request(h.port, { agent, path: '/a' })
  t.equal(r1.body, 'GET /a ')
  const r2 = await request(h.port, { agent, method: 'PUT', path: '/b', body: 'x'.repeat(100_000) })
  t.equal(r2.body, `PUT /b ${'x'.repeat(100_000)}`)
  const r3 = await request(h.port, { agent, method: 'HEAD', path: '/c' })
  t.equal(r3.status, 200)
  t.equal(r3.body, '')
  t.equal((await request(h.port, { agent, path: '/204' })).status, 204)
  t.equal((await request(h.port, { agent, path: '/304' })).status, 304)
  const r6 = await request(h.port, { agent, path: '/chunked' })
  t.equal(r6.body, 'part1-part2')
  t.equal(r6.headers['transfer-encoding'], 'chunked')
  const r7 = await request(h.port, { agent, method: 'POST', path: '/chunked-up', headers: { 'Transfer-Encoding': 'chunked' }, body: 'streamed' })
  t.equal(r7.body, 'POST /chunked-up streamed')
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => request(h.port, { agent, path: `/p${i}` })))
  t.same(all.map(r => r.body), Array.from({ length: 20 }, (_, i) => `GET /p${i} `))
  const sockets = new Set([r1, r2, r3, r6, r7, ...all].map(r => r.socket))
  t.ok(h.opened <= 3, `connections reused (${h.opened} opened for 26 requests)`)
  t.ok(h.opened >= sockets.size, 'one link per client connection')
  t.same(h.fallbacks, [])
})

t.test('an upgrade to websocket: after 101 the link is plain TCP', async t => {
  const server = await rawServer(t, s => {
    let buf = ''
    const onData = (c: Buffer) => {
      buf += c.toString('latin1')
      if (!buf.includes('\r\n\r\n')) return
      s.off('data', onData)
      s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      s.pipe(s)                                           // echo from here on
    }
    s.on('data', onData)
  })
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_status', attributes: { match: { path: '/api/**' } } }] })
  const c = net.connect({ port: h.port, host: '127.0.0.1' })
  t.teardown(() => c.destroy())
  await once(c, 'connect')
  const chunks: Buffer[] = []
  c.on('data', x => chunks.push(x))
  c.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
  await until(() => Buffer.concat(chunks).includes('\r\n\r\n'))
  t.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 101 /)
  chunks.length = 0
  // frames that are not HTTP, and a "request" the fault would answer if the link still spoke HTTP: all echoed
  const frames = Buffer.concat([b('\x81\x85\x01\x02\x03\x04'), b('GET /api/x HTTP/1.1\r\n\r\n'), Buffer.from([0, 255, 13, 10, 13, 10])])
  c.write(frames)
  await until(() => Buffer.concat(chunks).length >= frames.length)
  t.ok(Buffer.concat(chunks).equals(frames), 'tunnel data echoed byte-exact')
  t.same(h.fallbacks, [], 'an upgrade is not a fallback')
  t.equal(h.applied.size, 0)
})

t.test('an upgrade request answered by coquin: HTTP goes on after it', async t => {
  const server = await httpServer(t, (req, res) => res.end(`upstream ${req.url}`))
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_status', attributes: { status: 403, body: 'no', match: { path: '/ws' } } }] })
  const { data } = await within(exchange(t, h.port,
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n',
    { end: false, until: d => d.toString().endsWith('upstream /next') }), 5000, 'replies')
  t.match(data.toString(), /^HTTP\/1\.1 403 Forbidden\r\n[^]*\r\n\r\nnoHTTP\/1\.1 200 OK\r\n[^]*upstream \/next$/)
})

t.test('CONNECT: after 200 the link is a tunnel; a refused CONNECT stays HTTP', async t => {
  const server = await rawServer(t, s => {
    let buf = ''
    const onData = (c: Buffer) => {
      buf += c.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end)
        buf = buf.slice(end + 4)
        if (head.startsWith('CONNECT denied')) s.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno')
        else if (head.startsWith('GET')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        else {
          s.off('data', onData)
          s.write('HTTP/1.1 200 Connection Established\r\n\r\n')
          s.pipe(s)
          return
        }
      }
    }
    s.on('data', onData)
  })
  const h = await httpProxy(t, server.port)
  const c = net.connect({ port: h.port, host: '127.0.0.1' })
  t.teardown(() => c.destroy())
  await once(c, 'connect')
  const chunks: Buffer[] = []
  c.on('data', x => chunks.push(x))
  c.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  await until(() => Buffer.concat(chunks).includes('\r\n\r\n'))
  chunks.length = 0
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
  c.write(hello)
  await until(() => Buffer.concat(chunks).length >= hello.length)
  t.ok(Buffer.concat(chunks).equals(hello))
  t.same(h.fallbacks, [])

  const { data } = await within(exchange(t, h.port, 'CONNECT denied:443 HTTP/1.1\r\nHost: d\r\n\r\nGET / HTTP/1.1\r\nHost: d\r\n\r\n', { end: false, until: d => d.toString().endsWith('ok') && d.toString().includes('no') }), 5000, 'replies')
  t.equal(data.toString(), 'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  t.same(h.fallbacks, [])
})

t.test('HTTP/1.0: a response read until close, then the link ends', async t => {
  const reqBytes = b('GET /old HTTP/1.0\r\nUser-Agent: Wget/1.12\r\n\r\n')
  const resBytes = b('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n' + 'y'.repeat(50_000))
  const up = await scripted(t, reqBytes, resBytes, 3)
  const h = await httpProxy(t, up.server.port, { faults: [{ type: 'http_delay', attributes: { delay: 1, match: { path: '/none' } } }] })
  const { data } = await within(exchange(t, h.port, reqBytes, { end: false }), 10_000, 'response')
  t.ok(data.equals(resBytes))
  t.ok(up.received().equals(reqBytes))
  t.same(h.fallbacks, [])
  await until(() => h.open === 0)
})

t.test('malformed input falls back to TCP without losing a byte', async t => {
  const random = seededRandom(99)
  const garbage = Buffer.alloc(200_000)
  for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(random() * 256)
  // a valid request first, then a request whose framing is broken, then binary junk
  const reqBytes = Buffer.concat([b('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n'), b('POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n'), garbage])
  const resBytes = Buffer.concat([b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), b('HTTP/1.1 400 Bad Request\r\n\r\n'), garbage.subarray(0, 70_000)])
  const up = await scripted(t, reqBytes, resBytes, 5)
  const h = await httpProxy(t, up.server.port, { faults: [{ type: 'http_status', attributes: { match: { path: '/never' } } }] })
  const { data } = await within(exchange(t, h.port, reqBytes, { end: false }), 10_000, 'responses')
  t.ok(up.received().equals(reqBytes), 'the upstream got every byte')
  t.ok(data.equals(resBytes), 'the client got every byte')
  t.same(h.fallbacks, ['request: bad content-length'], 'counted once')

  // not HTTP at all (a TLS ClientHello): falls back at the first byte, both ways pass
  const hello = Buffer.from('16030100a5010000a103035c', 'hex')
  const tls = await scripted(t, hello, Buffer.from('160303003d020000390303', 'hex'))
  const h2 = await httpProxy(t, tls.server.port)
  const r = await within(exchange(t, h2.port, hello, { end: false }), 5000, 'reply')
  t.equal(r.data.toString('hex'), '160303003d020000390303')
  t.same(h2.fallbacks, ['request: not an HTTP request'])

  // a server that does not speak HTTP
  const ssh = await scripted(t, b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), b('SSH-2.0-OpenSSH_9.6\r\nmore'))
  const h3 = await httpProxy(t, ssh.server.port)
  const r3 = await within(exchange(t, h3.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { end: false }), 5000, 'reply')
  t.equal(r3.data.toString(), 'SSH-2.0-OpenSSH_9.6\r\nmore')
  t.same(h3.fallbacks, ['response: not an HTTP response'])
})

const curl = ['/usr/bin/curl', '/usr/local/bin/curl'].find(p => existsSync(p))
t.test('curl reuses one connection; only the matching request is answered by coquin', { skip: curl ? false : 'no curl' }, async t => {
  const server = await httpServer(t, (req, res) => {
    req.resume()
    req.on('end', () => res.end(`hello ${req.method} ${req.url}`))
  })
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_status', attributes: { status: 500, body: 'boom', match: { method: 'GET', path: '/b' } } }] })
  const base = `http://127.0.0.1:${h.port}`
  const { stdout } = await promisify(execFile)(curl!, ['-s', '--http1.1', '-w', '|%{http_code}|%{num_connects}\\n',
    `${base}/a`, `${base}/b`, `${base}/c`], { timeout: 10_000 })
  const lines = stdout.split('\n').filter(l => l.includes('|'))
  t.match(lines[0], /hello GET \/a\|200\|1/)
  t.match(lines[1], /boom\|500\|0/, 'answered by coquin on the reused connection')
  t.match(lines[2], /hello GET \/c\|200\|0/, 'the connection carries on in step')
  t.equal(h.opened, 1)
  t.equal(h.applied.get('http_status_downstream'), 1)
})
