import t from 'tap'
import http from 'node:http'
import { ManualClock, httpProxy, httpServer, makeFault, request } from '../helpers/http-harness.js'
import throttle from '../../behaviors/http_throttle.js'
import type { HttpRequest } from '../../src/faults/behavior.js'

async function upstream(t: { teardown(fn: () => unknown): void }) {
  const seen: string[] = []
  const server = await httpServer(t, (req, res) => { req.resume(); req.on('end', () => { seen.push(req.url!); res.end('ok') }) })
  return { server, seen }
}

/** 3 s of 50 req/s to bucket-a and 5 req/s to bucket-b, on the manual clock; returns the statuses per bucket. */
async function run(t: { teardown(fn: () => unknown): void }, attributes: Record<string, unknown>, hostStyle = false) {
  const { server, seen } = await upstream(t)
  const clock = new ManualClock()
  const h = await httpProxy(t, server.port, { clock, faults: [{ name: 'slowdown', type: 'http_throttle', attributes }] })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const out = { a: [] as number[], b: [] as number[], bodies: new Set<string>(), types: new Set<string | undefined>() }
  for (let i = 0; i < 150; i++) {
    clock.advance(i * 20 - clock.now())
    for (const bucket of i % 10 === 0 ? ['a', 'b'] as const : ['a'] as const) {
      const opts = hostStyle
        ? { path: `/obj-${i}`, headers: { Host: `bucket-${bucket}.s3.local:9000` } }
        : { path: `/bucket-${bucket}/obj-${i}`, headers: { Host: 's3.local' } }
      const r = await request(h.port, { agent, method: 'PUT', body: 'x', ...opts })
      out[bucket].push(r.status)
      if (r.status !== 200) { out.bodies.add(r.body); out.types.add(r.headers['content-type']) }
    }
  }
  return { ...out, seen, h }
}

t.test('http_throttle 10 req/s on bucket-a: 3 s of 50 req/s', async t => {
  const r = await run(t, { rate: 10, key: 'bucket', match: { path_prefix: '/bucket-a/' } })
  const passA = r.a.filter(s => s === 200).length
  // the bucket starts full (burst = rate = 10) and refills 10/s: 10 + 10 × 2.98 s → 39 of 150
  t.equal(passA, 39, `bucket-a: ${passA} pass`)
  t.ok(r.a.filter(s => s !== 200).every(s => s === 503), 'the rest get 503')
  t.equal(r.a.length - passA, 111)
  t.same(r.b, Array(15).fill(200), 'bucket-b: all pass')
  t.equal(r.bodies.size, 1)
  t.match([...r.bodies][0], /<Code>SlowDown<\/Code>/, 'an S3 SlowDown error')
  t.same([...r.types], ['application/xml'])
  t.equal(r.seen.length, passA + 15, 'throttled requests never reached the upstream')
  t.equal(r.h.applied.get('slowdown'), 111)
  t.equal(r.h.opened, 1, 'one keep-alive connection throughout')
  // in steady state, passes are evenly spaced: one every 5 requests (100 ms at 50 req/s)
  const lastSecond = r.a.slice(100)
  t.equal(lastSecond.filter(s => s === 200).length, 10)
})

t.test('burst 1: about rate × seconds pass', async t => {
  const r = await run(t, { rate: 10, burst: 1, match: { path_prefix: '/bucket-a/' } })
  t.equal(r.a.filter(s => s === 200).length, 30, '1 + 10 × 2.98 s')
  t.same(r.b, Array(15).fill(200))
})

t.test('host_bucket: the Host\'s first label is the key', async t => {
  const r = await run(t, { rate: 10, burst: 1, key: 'host_bucket', status: 429, headers: {}, body: 'slow down' }, true)
  t.equal(r.a.filter(s => s === 200).length, 30)
  t.ok(r.a.filter(s => s !== 200).every(s => s === 429))
  t.equal(r.b.filter(s => s === 200).length, 15, 'bucket-b has its own bucket')
  t.same([...r.bodies], ['slow down'])
})

t.test('keys: bucket, host_bucket, path, header:NAME; buckets are bounded (LRU)', async t => {
  const req = (path: string, headers: Record<string, string> = {}): HttpRequest => ({
    method: 'GET', target: path, path, query: {}, version: '1.1', headers, rawHeaders: [], client: { address: '127.0.0.1', port: 1 }, link: 1, index: 0,
  })
  const clock = new ManualClock()
  const ctx = { clock, random: Math.random }
  const decide = (attrs: Record<string, unknown>, reqs: HttpRequest[]) => {
    const f = makeFault({ type: 'http_throttle', attributes: { rate: 1, burst: 1, ...attrs } })
    return reqs.map(r => throttle.request!(f.attributes as never, r, f, ctx) === null ? 'pass' : 'throttle')
  }
  t.same(decide({ key: 'bucket' }, [req('/a/1'), req('/a/2'), req('/b/1')]), ['pass', 'throttle', 'pass'])
  t.same(decide({ key: 'path' }, [req('/a/1'), req('/a/2'), req('/a/1')]), ['pass', 'pass', 'throttle'])
  t.same(decide({ key: 'host_bucket' }, [req('/', { host: 'Photos.s3.amazonaws.com' }), req('/', { host: 'photos.s3.amazonaws.com:443' }), req('/', { host: 'docs.s3' })]),
    ['pass', 'throttle', 'pass'])
  t.same(decide({ key: 'header:X-Tenant' }, [req('/', { 'x-tenant': 't1' }), req('/', { 'x-tenant': 't2' }), req('/', { 'x-tenant': 't1' })]),
    ['pass', 'pass', 'throttle'])
  const f = makeFault({ type: 'http_throttle', attributes: { rate: 1 } })
  for (let i = 0; i < 10_050; i++) throttle.request!(f.attributes as never, req(`/k${i}/x`), f, ctx)
  t.equal((f.state as Map<string, unknown>).size, 10_000, 'at most 10 000 keys')
  t.notOk((f.state as Map<string, unknown>).has('k0'), 'the least recently seen went first')
  t.ok((f.state as Map<string, unknown>).has('k10049'))
})

t.test('schema: bad key and bad match are refused', async t => {
  t.throws(() => makeFault({ type: 'http_throttle', attributes: { key: 'cookie' } }), { code: 'COQUIN_ERR_TOXIC_ATTRIBUTES' })
  t.throws(() => makeFault({ type: 'http_throttle', attributes: { match: { path_regex: '(' } } }), { code: 'COQUIN_ERR_TOXIC_ATTRIBUTES' })
  t.throws(() => makeFault({ type: 'http_throttle', attributes: { match: { client: ['10.0.0.0/33'] } } }), { code: 'COQUIN_ERR_TOXIC_ATTRIBUTES' })
  t.throws(() => makeFault({ type: 'http_throttle', attributes: { match: { pathx: '/' } } }))
  const f = makeFault({ type: 'http_throttle', attributes: {} })
  t.match(f.attributes, { rate: 10, burst: 0, key: 'bucket', status: 503, match: {} })
})
