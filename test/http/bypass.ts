// Issue 17's attacks on HTTP faults, replayed: a `node:http` upstream at its defaults, a raw client that
// pipelines, and an `http_status 403` guarding /admin. Whatever node:http accepts must be framed (else
// the fault is bypassed for the rest of the connection); what cannot be framed is counted, journaled and,
// with `http_fallback: close`, closed before anything after it reaches the upstream.
import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { Journal } from '../../src/observe/journal.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { observers } from '../../src/observe/observer.js'
import { registry, until, within } from '../helpers/net.js'
import { rawServer } from '../helpers/http-harness.js'

type T = { teardown(fn: () => unknown): void }

const ADMIN = 'GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n'
const FORBIDDEN = /HTTP\/1\.1 403 Forbidden/

/** node:http at its defaults; remembers every request it handled. */
async function nodeUpstream(t: T, handler?: http.RequestListener) {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.url!)
    if (handler) return handler(req, res)
    req.resume()
    req.on('end', () => res.end(`ok ${req.url}`))
  })
  const sockets = new Set<net.Socket>()
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return { port: (server.address() as net.AddressInfo).port, seen }
}

async function guarded(t: T, upstreamPort: number, extra: Record<string, unknown> = {}) {
  const journal = new Journal()
  const metrics = createMetrics({ coquin: () => reg.proxies.values() })
  const reg = await registry(t, { observer: observers(journal, metrics.observer) })
  const proxy = await reg.create({
    name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstreamPort}`, protocol: 'http', ...extra,
    toxics: [{ name: 'guard', type: 'http_status', attributes: { status: 403, match: { path_prefix: '/admin' } } }],
  })
  const fallbacks = () => journal.query({ type: 'http_fallback' })
  const metric = async () => (await metrics.text()).body.split('\n').filter(l => l.startsWith('coquin_http_fallbacks_total{')).join('\n')
  return { proxy, journal, fallbacks, metric }
}

/** A raw client: writes `bytes`, reads until `done(received)` holds or the connection closes. */
async function exchange(t: T, port: number, bytes: string | Buffer, done: (s: string) => boolean) {
  const c = net.connect(port, '127.0.0.1')
  t.teardown(() => c.destroy())
  await once(c, 'connect')
  let got = ''
  let closed = false
  let error: string | undefined
  c.on('data', d => { got += d.toString('latin1') })
  c.on('error', e => { error = (e as NodeJS.ErrnoException).code })
  c.on('close', () => { closed = true })
  c.write(bytes)
  await within(until(() => closed || done(got), 10_000, 'the responses'), 11_000)
  return { got, closed, error, socket: c }
}

/** Sends `first` straight to node:http: did it answer 200 (accepted the message)? */
async function nodeAccepts(t: T, first: string): Promise<boolean> {
  const up = await nodeUpstream(t)
  const r = await exchange(t, up.port, first, s => /\r\n\r\nok \//.test(s))
  r.socket.destroy()
  return /^HTTP\/1\.1 200 /.test(r.got)
}

const manyFields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join('')

const requestCases: [string, string][] = [
  ['a 16-digit zero Content-Length', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0000000000000000\r\n\r\n'],
  ['a 20-digit Content-Length of 3', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000003\r\n\r\nabc'],
  ['1,001 header fields', `GET /a HTTP/1.1\r\nHost: x\r\n${manyFields(1001)}\r\n`],
  ['2,000 header fields (15 KiB)', `GET /a HTTP/1.1\r\nHost: x\r\n${'A: b\r\n'.repeat(2000)}\r\n`],
  ['a chunk size padded with zeros', 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000003\r\nabc\r\n0\r\n\r\n'],
]

t.test('a request node:http accepts never turns the 403 off for the next pipelined one', async t => {
  for (const [name, first] of requestCases) {
    t.ok(await nodeAccepts(t, first), `${name}: node:http accepts it`)
    const up = await nodeUpstream(t)
    const { proxy, fallbacks } = await guarded(t, up.port)
    const r = await exchange(t, proxy.port, first + ADMIN, s => FORBIDDEN.test(s))
    t.match(r.got, /^HTTP\/1\.1 200 OK[^]*ok \/a/, `${name}: the first request answered by the upstream`)
    t.match(r.got, FORBIDDEN, `${name}: the pipelined /admin answered 403 by coquin`)
    t.same(up.seen, ['/a'], `${name}: /admin never reached the upstream`)
    t.same(fallbacks(), [], `${name}: framed all along`)
    r.socket.destroy()
  }
})

t.test('an upstream response with 1,001 header fields leaves later requests on the connection guarded', async t => {
  const up = await nodeUpstream(t, (req, res) => {
    req.resume()
    if (req.url === '/many') for (let i = 0; i < 1001; i++) res.setHeader(`x-f${i}`, 'v')
    res.end(`ok ${req.url}`)
  })
  const { proxy, fallbacks } = await guarded(t, up.port)
  const c = net.connect(proxy.port, '127.0.0.1')
  t.teardown(() => c.destroy())
  let got = ''
  c.on('data', d => { got += d.toString('latin1') })
  c.write('GET /many HTTP/1.1\r\nHost: x\r\n\r\n')
  await until(() => got.endsWith('ok /many'), 10_000, 'the big response')
  t.ok((got.match(/\r\nx-f\d+: v/g) ?? []).length === 1001, 'all 1,001 fields reached the client')
  c.write(ADMIN)
  await until(() => FORBIDDEN.test(got), 10_000, 'the 403')
  t.same(up.seen, ['/many'], '/admin never reached the upstream')
  t.same(fallbacks(), [])
})

t.test('nothing is answered after a response that ends the connection (RFC 9112 §9.6)', async t => {
  // The upstream answers the first request with a body read until close, then closes.
  const received: string[] = []
  const up = await rawServer(t, s => {
    let buf = ''
    s.on('data', d => {
      buf += d.toString('latin1')
      received.push(d.toString('latin1'))
      if (buf.includes('\r\n\r\n') && !s.writableEnded) s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok')
    })
  })
  for (const first of ['GET /a HTTP/1.0\r\n\r\n', 'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']) {
    received.length = 0
    const { proxy } = await guarded(t, up.port)
    const r = await exchange(t, proxy.port, first + 'GET /admin HTTP/1.1\r\nHost: x\r\n\r\n', () => false)
    t.equal(r.got, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok', `${first.split('\r\n')[0]}: the response, and nothing after it`)
    t.notMatch(received.join(''), /admin/, 'the request pipelined behind the closing one was not forwarded')
    await until(() => proxy.connections === 0, 5000, 'the link ended')
  }
  // Connection: close in the response, with a length: the same.
  const up2 = await nodeUpstream(t, (req, res) => { req.resume(); res.setHeader('connection', 'close'); res.end('bye') })
  const { proxy } = await guarded(t, up2.port)
  const r = await exchange(t, proxy.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' + ADMIN, () => false)
  t.match(r.got, /^HTTP\/1\.1 200 OK[^]*Connection: close[^]*\r\n\r\nbye$/i, 'only the upstream response, ending the connection')
  t.notMatch(r.got, FORBIDDEN)
  t.same(up2.seen, ['/a'])
})

t.test('an unframeable request: counted, journaled, warned; http_fallback decides pass or close', async t => {
  const bad = 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n'
  // pass (the default): the rest goes through unmatched, byte for byte
  const received: string[] = []
  const up = await rawServer(t, s => { s.on('data', d => received.push(d.toString('latin1'))) })
  const pass = await guarded(t, up.port)
  const c = net.connect(pass.proxy.port, '127.0.0.1')
  t.teardown(() => c.destroy())
  c.write(bad + ADMIN)
  await until(() => received.join('') === bad + ADMIN, 5000, 'the bytes at the upstream')
  await until(() => pass.fallbacks().length === 1, 5000, 'the journal event')
  t.match(pass.fallbacks()[0], { type: 'http_fallback', proxy: 'web', stream: 'upstream', reason: 'bad_length', detail: 'bad content-length', action: 'pass' })
  t.match(await pass.metric(), /coquin_http_fallbacks_total\{proxy="web",reason="bad_length"\} 1/)
  c.destroy()

  // close: nothing from the failure point on reaches the upstream; the client gets a FIN
  received.length = 0
  const strict = await guarded(t, up.port, { http_fallback: 'close' })
  t.match(strict.proxy.toJSON(), { http_fallback: 'close' })
  const r = await exchange(t, strict.proxy.port, 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n' + bad + ADMIN, () => false)
  t.equal(r.error, undefined, 'a clean close')
  t.equal(received.join(''), 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n', 'only what came before the failure was forwarded')
  t.match(strict.fallbacks()[0], { stream: 'upstream', reason: 'bad_length', action: 'close' })
  await until(() => strict.proxy.connections === 0, 5000, 'the link ended')
})

t.test('an unframeable response with http_fallback close: the client gets what came before, then FIN', async t => {
  const up = await rawServer(t, s => {
    s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/9.9 200 OK\r\n\r\nsecret'))
  })
  const strict = await guarded(t, up.port, { http_fallback: 'close' })
  const r = await exchange(t, strict.proxy.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n', () => false)
  t.equal(r.got, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  t.match(strict.fallbacks()[0], { stream: 'downstream', reason: 'unsupported_version', action: 'close' })
})

t.test('http_fallback is checked: a bad value is a 400-class error naming the field', async t => {
  const reg = await registry(t)
  await t.rejects(reg.create({ name: 'x', upstream: '127.0.0.1:1', protocol: 'http', http_fallback: 'drop' }), { message: /http_fallback must be pass or close/ })
})
