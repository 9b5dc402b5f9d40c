import t from 'tap'
import http from 'node:http'
import { httpProxy, httpServer, rawClient, request, type Reply } from '../helpers/http-harness.js'
import { until } from '../helpers/net.js'

async function upstream(t: { teardown(fn: () => unknown): void }) {
  return httpServer(t, (req, res) => { req.resume(); req.on('end', () => res.end(`ok ${req.url}`)) })
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`

t.test('every 3rd response: a naive client reusing its connection fails on the 4th request', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ name: 'close3', type: 'http_close', attributes: { every: 3 } }] })
  const c = await rawClient(t, h.port)
  for (let i = 1; i <= 3; i++) {
    const r = await c.send(get(`/${i}`))
    t.match(r?.toString(), new RegExp(`Connection: keep-alive[^]*\r\n\r\nok /${i}$`), `response ${i} whole, and says keep-alive`)
  }
  t.equal(await c.send(get('/4')), null, 'the 4th request gets no response')
  await until(() => c.closed)
  t.equal(c.error, undefined, 'a clean close (FIN)')
  t.same(h.ends, ['close:http_close'])
  t.equal(h.applied.get('close3'), 1)
})

t.test('mode rst: the client sees a reset', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_close', attributes: { every: 2, mode: 'rst' } }] })
  const c = await rawClient(t, h.port)
  t.match((await c.send(get('/1')))?.toString(), /ok \/1$/)
  t.match((await c.send(get('/2')))?.toString(), /ok \/2$/, 'the response before the reset is whole')
  await until(() => c.closed)
  // A RST that lands while the response is still unread is reported as EOF by Linux: either is a reset here.
  t.ok(c.error === 'ECONNRESET' || c.error === undefined, `closed (${c.error ?? 'EOF'})`)
  t.same(h.ends, ['reset:http_close'])
  t.equal(await c.send(get('/3')), null, 'nothing more on that connection')
})

/** The pool: node:http with keep-alive, one connection, requests queued on it (reused at once). */
async function pooled(port: number, agent: http.Agent, n: number, retry: boolean) {
  let retries = 0
  const one = async (path: string): Promise<Reply | string> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request(port, { agent, path })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // a GET that failed on a reused connection is safe to retry (what a good client does)
        if (!retry || attempt > 2 || code !== 'ECONNRESET') return String(code)
        retries++
      }
    }
  }
  const out = await Promise.all(Array.from({ length: n }, (_, i) => one(`/${i}`)))
  return { out, retries }
}

t.test('every 3rd: a keep-alive pool breaks, a retrying client recovers', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_close', attributes: { every: 3 } }] })
  const naive = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => naive.destroy())
  const a = await pooled(h.port, naive, 9, false)
  const failed = a.out.filter(r => typeof r === 'string')
  t.ok(failed.length >= 1, `the naive pool saw ${failed.length} failures`)
  t.ok(failed.every(r => r === 'ECONNRESET'), 'socket hang up / ECONNRESET')
  t.ok(a.out.every((r, i) => typeof r === 'string' || r.body === `ok /${i}`), 'what succeeded is intact')

  const careful = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => careful.destroy())
  const b = await pooled(h.port, careful, 9, true)
  t.same(b.out.map(r => typeof r === 'string' ? r : r.body), Array.from({ length: 9 }, (_, i) => `ok /${i}`), 'the retrying client got every response')
  t.ok(b.retries >= 1, `after ${b.retries} retries`)
})

t.test('after_requests: the N-th response announces Connection: close; clients cope', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_close', attributes: { after_requests: 2 } }] })
  const c = await rawClient(t, h.port)
  t.match((await c.send(get('/1')))?.toString(), /keep-alive/)
  const second = (await c.send(get('/2')))?.toString()
  t.match(second, /\r\nConnection: close\r\n\r\nok \/2$/, 'announced')
  t.notMatch(second, /keep-alive/, 'the keep-alive field is gone')
  await until(() => c.closed)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const { out } = await pooled(h.port, agent, 6, false)
  t.same(out.map(r => typeof r === 'string' ? r : r.body), Array.from({ length: 6 }, (_, i) => `ok /${i}`), 'no failure')
  t.equal(h.opened, 4, 'a new connection every 2 requests')
})

t.test('match and count limit the closes', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ name: 'once', type: 'http_close', attributes: { match: { path: '/bucket-a/**' }, count: 1 } }] })
  const c = await rawClient(t, h.port)
  for (let i = 0; i < 5; i++) t.match((await c.send(get(`/bucket-b/${i}`)))?.toString(), /ok/)
  t.match((await c.send(get('/bucket-a/x/y')))?.toString(), /ok \/bucket-a\/x\/y$/)
  await until(() => c.closed)
  const d = await rawClient(t, h.port)
  for (let i = 0; i < 5; i++) t.match((await d.send(get(`/bucket-a/${i}`)))?.toString(), /ok/, 'count: 1 — no more closes')
  t.equal(h.applied.get('once'), 1)
})

t.test('mode rst_on_reuse: the connection looks alive; the next request on it is reset, never forwarded', async t => {
  const seen: string[] = []
  const server = await httpServer(t, (req, res) => { seen.push(req.url!); req.resume(); req.on('end', () => res.end(`ok ${req.url}`)) })
  const h = await httpProxy(t, server.port, { faults: [{ name: 'lb', type: 'http_close', attributes: { every: 1, mode: 'rst_on_reuse' } }] })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const first = await request(h.port, { agent, path: '/1' })
  t.equal(first.body, 'ok /1')
  t.equal(first.headers.connection, 'keep-alive', 'the response kept keep-alive: the pool keeps the socket')
  await new Promise(r => setImmediate(r))                 // the agent takes the socket back after 'end'
  t.equal(Object.values(agent.freeSockets).flat().length, 1, 'no FIN, no reset: the socket waits in the pool')
  t.same(h.ends, [], 'the link is still open')
  // the reuse: the client writes its next request on the pooled socket
  const err = await request(h.port, { agent, path: '/2' }).then(() => null, (e: NodeJS.ErrnoException) => e)
  t.equal(err?.code, 'ECONNRESET', 'the request on the reused connection fails with a reset')
  t.same(h.ends, ['reset:http_close'])
  t.same(seen, ['/1'], 'the request on the forgotten connection never reached the upstream')
  // a client that retries on a fresh connection gets its answer (and its connection is forgotten in turn)
  t.equal((await request(h.port, { agent, path: '/3' })).body, 'ok /3')
  await until(() => h.ends.length === 1)
})

t.test('mode rst_on_reuse: a client FIN on the forgotten connection is answered with a reset too', async t => {
  const server = await upstream(t)
  const h = await httpProxy(t, server.port, { faults: [{ type: 'http_close', attributes: { mode: 'rst_on_reuse' } }] })
  const c = await rawClient(t, h.port)
  t.match((await c.send(get('/1')))?.toString(), /ok \/1$/)
  c.socket.end()
  await until(() => h.ends.length === 1)
  t.same(h.ends, ['reset:http_close'])
})
