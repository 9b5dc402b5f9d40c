import t from 'tap'
import http from 'node:http'
import { httpProxy, httpServer, rawClient, request } from '../helpers/http-harness.js'
import { until } from '../helpers/net.js'
import { seededRandom } from '../../src/core/random.js'

async function upstream(t: { teardown(fn: () => unknown): void }) {
  const seen: string[] = []
  const server = await httpServer(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`)
      res.setHeader('X-Upstream', 'yes')
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).length}`)
    })
  })
  return { server, seen }
}

t.test('http_status on PUT /bucket-a/* with toxicity 0.3, through a keep-alive pool', async t => {
  const { server, seen } = await upstream(t)
  const h = await httpProxy(t, server.port, {
    seed: 42,
    faults: [{ name: 'slow', type: 'http_status', toxicity: 0.3,
      attributes: { status: 503, headers: { 'Retry-After': '1' }, body: 'busy', match: { method: 'PUT', path: '/bucket-a/*' } } }],
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())
  // 200 matching requests among 250 others (other bucket, other method, a deeper path), shuffled (seeded)
  const reqs: { method: string; path: string; matches: boolean }[] = []
  for (let i = 0; i < 200; i++) reqs.push({ method: 'PUT', path: `/bucket-a/key-${i}`, matches: true })
  for (let i = 0; i < 100; i++) reqs.push({ method: 'GET', path: `/bucket-a/key-${i}`, matches: false })
  for (let i = 0; i < 100; i++) reqs.push({ method: 'PUT', path: `/bucket-b/key-${i}`, matches: false })
  for (let i = 0; i < 50; i++) reqs.push({ method: 'PUT', path: `/bucket-a/dir/key-${i}`, matches: false })
  const shuffle = seededRandom(1)
  for (let i = reqs.length - 1; i > 0; i--) { const j = Math.floor(shuffle() * (i + 1)); [reqs[i], reqs[j]] = [reqs[j]!, reqs[i]!] }

  const results: { req: typeof reqs[number]; status: number; body: string; headers: http.IncomingHttpHeaders }[] = []
  for (let i = 0; i < reqs.length; i += 8) {
    const batch = reqs.slice(i, i + 8)
    results.push(...await Promise.all(batch.map(async req => {
      const r = await request(h.port, { agent, method: req.method, path: req.path, body: req.method === 'PUT' ? 'data'.repeat(100) : undefined })
      return { req, status: r.status, body: r.body, headers: r.headers }
    })))
  }
  // Each matching request draws once from the proxy's seeded source, in order: the count is exact.
  const draw = seededRandom(42)
  let expected = 0
  for (let i = 0; i < 200; i++) if (draw() < 0.3) expected++
  const hit = results.filter(r => r.status === 503)
  t.equal(hit.length, expected, `exactly the seeded count (${expected} of 200)`)
  t.ok(expected >= 40 && expected <= 80, 'about 30%')
  t.ok(hit.every(r => r.req.matches), 'no request outside the match was answered')
  t.ok(hit.every(r => r.body === 'busy' && r.headers['retry-after'] === '1' && r.headers['x-coquin-fault'] === 'slow'))
  t.ok(hit.every(r => r.headers['content-length'] === '4'))
  const passed = results.filter(r => r.status !== 503)
  t.ok(passed.every(r => r.status === 200 && r.body === `${r.req.method} ${r.req.path} ${r.req.method === 'PUT' ? 400 : 0}`), 'the rest reached the upstream')
  t.equal(seen.length, reqs.length - expected, 'answered requests never reached the upstream')
  t.equal(h.applied.get('slow'), expected)
  t.ok(h.opened <= 4, `a pool of ${h.opened} connections carried ${reqs.length} requests`)
  t.same(h.fallbacks, [])
})

t.test('responses that pass are byte-identical to the upstream\'s; answered ones keep the connection in step', async t => {
  const { server } = await upstream(t)
  const h = await httpProxy(t, server.port, {
    seed: 7,
    faults: [{ type: 'http_status', toxicity: 0.5, attributes: { status: 503, body: 'x', match: { method: 'PUT', path: '/bucket-a/*' } } }],
  })
  const direct = await rawClient(t, server.port)
  const proxied = await rawClient(t, h.port)
  let answered = 0
  for (let i = 0; i < 60; i++) {
    const body = 'b'.repeat(i * 37)
    const path = i % 3 === 0 ? `/bucket-b/k${i}` : `/bucket-a/k${i}`
    const method = i % 4 === 0 ? 'GET' : 'PUT'
    const req = `${method} ${path} HTTP/1.1\r\nHost: s3.local\r\nContent-Length: ${body.length}\r\n\r\n${body}`
    const want = await direct.send(req)
    const got = await proxied.send(req)
    if (got === null || want === null) { t.fail(`connection closed at request ${i}`); break }
    if (got.toString().startsWith('HTTP/1.1 503')) {
      answered++
      t.ok(method === 'PUT' && path.startsWith('/bucket-a/'), `request ${i} matched`)
      continue
    }
    if (!got.equals(want)) { t.equal(got.toString(), want.toString(), `response ${i} byte-identical`); break }
  }
  t.ok(answered > 5 && answered < 40, `some answered (${answered}), all others identical`)
  t.equal(h.opened, 1, 'one connection throughout')
})

t.test('Connection: close and HTTP/1.0 requests get Connection: close and the link closes', async t => {
  const { server, seen } = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_status', attributes: { status: 500, body: 'oops' } }] })
  const c = await rawClient(t, h.port)
  const res = await c.send('GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(res?.toString(), 'HTTP/1.1 500 Internal Server Error\r\nX-Coquin-Fault: http_status_downstream\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops')
  await until(() => c.closed)
  const d = await rawClient(t, h.port)
  const res10 = await d.send('GET /y HTTP/1.0\r\n\r\n')
  t.match(res10?.toString(), /^HTTP\/1\.1 500 [^]*Connection: close\r\n\r\noops$/)
  await until(() => d.closed)
  const e = await rawClient(t, h.port)
  const ka = await e.send('GET /z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
  t.match(ka?.toString(), /Connection: keep-alive\r\n\r\noops$/, 'HTTP/1.0 keep-alive is kept')
  const again = await e.send('HEAD /z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { head: true })
  t.match(again?.toString(), /Content-Length: 4\r\nConnection: keep-alive\r\n\r\n$/, 'HEAD: the length, no body')
  t.same(seen, [])
  await until(() => h.open === 1)
})

t.test('answers keep pipeline order with forwarded requests', async t => {
  const server = await httpServer(t, (req, res) => {
    // answer slowly, so that coquin's answers must wait for their turn
    setTimeout(() => res.end(`up ${req.url}`), req.url === '/1' ? 30 : 1)
  })
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_status', attributes: { status: 404, body: 'nope', match: { path: '/bucket-a/**' } } }] })
  const c = await rawClient(t, h.port)
  const pipeline = ['/1', '/bucket-a/2', '/3', '/bucket-a/x/4', '/bucket-a/5', '/6']
    .map(p => `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`).join('')
  const first = await c.send(pipeline)
  const bodies = [first]
  for (let i = 1; i < 6; i++) bodies.push(await c.send(''))
  t.same(bodies.map(b => b?.toString().split('\r\n\r\n')[1]), ['up /1', 'nope', 'up /3', 'nope', 'nope', 'up /6'])
})
