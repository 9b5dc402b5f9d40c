// The HTTP layer inside the real Registry → Proxy → Link (protocol: http).
import t from 'tap'
import http from 'node:http'
import { registry, until } from '../helpers/net.js'
import { httpServer, request } from '../helpers/http-harness.js'
import { nullObserver, type Observer } from '../../src/observe/observer.js'


t.test('a protocol: http proxy: per-request faults, journal events, live changes, TCP faults after', async t => {
  const server = await httpServer(t, (req, res) => { req.resume(); req.on('end', () => res.end(`ok ${req.url}`)) })
  const events: string[] = []
  const observer: Observer = {
    ...nullObserver,
    faultApplied: (_p, f, _l, r) => { if (r !== undefined) events.push(`hit ${f.name} ${r}`) },
    httpRequest: (_p, _l, r) => { events.push(`req ${r.index} ${r.method} ${r.path} ${r.status} ${r.source} ${r.faults?.join('+') ?? ''}`) },
  }
  const reg = await registry(t, { observer })
  const proxy = await reg.create({
    name: 'h', listen: '127.0.0.1:0', upstream: `127.0.0.1:${server.port}`, protocol: 'http',
    toxics: [
      { name: 'st', type: 'http_status', attributes: { status: 503, match: { path: '/bucket-a/*' } } },
      { name: 'lat', type: 'latency', stream: 'downstream', attributes: { latency: 5 } },
    ],
  })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const statuses = []
  for (const path of ['/bucket-b/x', '/bucket-a/x', '/bucket-b/y']) statuses.push((await request(proxy.port, { agent, path })).status)
  t.same(statuses, [200, 503, 200])
  await until(() => events.length >= 4)
  t.same(events, ['req 0 GET /bucket-b/x 200 upstream ', 'hit st 1', 'req 1 GET /bucket-a/x 503 coquin st', 'req 2 GET /bucket-b/y 200 upstream '])
  ;(proxy as unknown as { headerFaults: boolean }).headerFaults = true
  t.equal((await request(proxy.port, { agent, path: '/z', headers: { 'x-coquin-fault-status': '500' } })).status, 500, 'header_faults')
  proxy.removeFault('st')
  t.equal((await request(proxy.port, { agent, path: '/bucket-a/x' })).status, 200, 'removed live')
  proxy.addFault(reg.makeFault({ name: 'cl', type: 'http_close', attributes: { every: 1 } }))
  const last = await request(proxy.port, { agent, path: '/c' })
  t.equal(last.body, 'ok /c', 'the response held by the latency stage is sent before the close')
  await until(() => proxy.connections === 0, 5000, 'the link closed after the response')
  t.equal(proxy.connections, 0)
})
