// `fault_acted`: the journal records the moment a fault does something to a link or request (and the metric
// coquin_fault_actions_total counts it), distinct from `fault` ("applies to this link"). Real sockets, real
// clients (undici, node:http), waiting on journal events, never on wall time.
import t, { type Test } from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { Client } from 'undici'
import { startCoquin } from '../src/server.js'
import { Coquin, type FaultActedEvent, type JournalEvent, type ProxyHandle } from '../src/client/index.js'
import { connect, echoServer, readBytes, within } from './helpers/net.js'

type T = Test

const server = await startCoquin({ port: 0 })
t.teardown(() => server.close())
const coquin = new Coquin(server.url)
const echo = await echoServer(t)

let n = 0
async function proxy(t: T, upstream: string, more: { protocol?: 'http' } = {}): Promise<ProxyHandle> {
  const p = await coquin.proxy({ name: `acted-${++n}`, listen: '127.0.0.1:0', upstream, ...more })
  t.teardown(() => p.delete().catch(() => {}))
  return p
}
const portOf = (p: ProxyHandle) => Number(p.listen.slice(p.listen.lastIndexOf(':') + 1))
const acted = (events: readonly JournalEvent[]) => events.filter((e): e is FaultActedEvent => e.type === 'fault_acted')

t.test('idle_reset silent: the moment it silences the link is recorded, long before the client gives up', async t => {
  const p = await proxy(t, `127.0.0.1:${echo.port}`)
  await p.addFault({ name: 'lb', type: 'idle_reset', stream: 'downstream', attributes: { idle: 50, mode: 'silent' } })
  const c = await connect(t, portOf(p))
  c.write('x')
  await within(readBytes(c, 1), 5000, 'echo')
  const events = await p.waitForEvents({ type: ['fault', 'fault_acted'] }, es => acted(es).length > 0)
  const a = acted(events)[0]!
  t.match(a, { proxy: p.name, fault: 'lb', toxic_type: 'idle_reset', action: 'silenced', stream: 'downstream' })
  t.ok(events.some(e => e.type === 'fault' && e.link === a.link && e.id < a.id), 'the `fault` event came first, when the link opened')
  t.notOk(c.destroyed, 'the client still holds the connection: it was told nothing')
  c.destroy()
})

t.test('a fault that applies but never acts leaves a `fault` event and no `fault_acted`', async t => {
  const p = await proxy(t, `127.0.0.1:${echo.port}`)
  await p.addFault({ name: 'lb', type: 'idle_reset', stream: 'downstream', attributes: { idle: 600_000, mode: 'rst' } })
  const c = await connect(t, portOf(p))
  c.write('x')
  await within(readBytes(c, 1), 5000, 'echo')
  c.end()
  const events = await p.waitForEvents({}, es => es.some(e => e.type === 'link_close'))
  t.ok(events.some(e => e.type === 'fault'), 'it applied')
  t.same(acted(events), [], 'it never acted: the link closed first')
})

t.test('latency, blackhole and corrupt: one record per link, stream and action however many chunks', async t => {
  const p = await proxy(t, `127.0.0.1:${echo.port}`)
  await p.addFault({ name: 'slow', type: 'latency', stream: 'upstream', attributes: { latency: 1 } })
  const c = await connect(t, portOf(p))
  for (let i = 0; i < 5; i++) {
    c.write('ab')
    await within(readBytes(c, 2), 5000, 'echo')
  }
  await p.removeFault('slow')
  await p.addFault({ name: 'hole', type: 'blackhole', stream: 'downstream' })
  c.write('cd')
  c.write('ef')
  const events = await p.waitForEvents({ type: 'fault_acted' }, es => acted(es).some(e => e.action === 'dropped'))
  c.destroy()
  t.same(acted(events).map(e => [e.fault, e.action, e.stream]), [['slow', 'delayed', 'upstream'], ['hole', 'dropped', 'downstream']])
  t.equal(new Set(acted(events).map(e => e.link)).size, 1)
})

t.test('connect faults: refused; a partition in reset mode records each link it resets', async t => {
  const p = await proxy(t, `127.0.0.1:${echo.port}`)
  await p.addFault({ name: 'no', type: 'refuse', toxicity: 1, attributes: { count: 1 } })
  const c1 = net.connect(portOf(p), '127.0.0.1')
  c1.on('error', () => {})
  await within(new Promise(resolve => c1.on('close', resolve)), 5000, 'the refused connect ends')
  let events = await p.waitForEvents({ type: 'fault_acted' }, es => es.length >= 1)
  t.match(events[0], { fault: 'no', toxic_type: 'refuse', action: 'refused' })
  t.notOk('stream' in events[0]!, 'a connect decision acts on the whole link')
  await p.removeFault('no')

  const c2 = await connect(t, portOf(p))
  c2.on('error', () => {})
  const c2closed = new Promise(resolve => c2.on('close', resolve))
  c2.write('x')
  await within(readBytes(c2, 1), 5000, 'echo')
  const cut = await coquin.partition({ name: `acted-cut-${n}`, proxies: [p.name], mode: 'reset' })
  t.teardown(() => cut.heal().catch(() => {}))
  events = await p.waitForEvents({ type: 'fault_acted' }, es => es.some(e => (e as FaultActedEvent).action === 'reset'))
  t.match(acted(events).find(e => e.action === 'reset'), { fault: `partition:acted-cut-${n}`, toxic_type: 'partition' })
  await within(c2closed, 5000, 'the partition reset the open link')
})

t.test('HTTP: the fault that answered a request is recorded with the request, and counted by type and action', async t => {
  const web = http.createServer((_req, res) => res.end('ok'))
  web.listen(0, '127.0.0.1')
  await once(web, 'listening')
  t.teardown(() => { web.closeAllConnections(); web.close() })
  const p = await proxy(t, `127.0.0.1:${(web.address() as net.AddressInfo).port}`, { protocol: 'http' })
  await p.addFault({ name: 'slowdown', type: 'http_status', attributes: { status: 503, match: { path: '/b/**' } } })
  const client = new Client(`http://127.0.0.1:${portOf(p)}`)   // one connection: the second request is its second
  t.teardown(() => client.destroy())
  t.equal((await (await client.request({ method: 'GET', path: '/a' })).body.text()), 'ok')
  const res = await client.request({ method: 'GET', path: '/b/key' })
  await res.body.dump()
  t.equal(res.statusCode, 503)
  const events = await p.waitForEvents({ type: 'fault_acted' }, es => es.length >= 1)
  t.match(events[0], { fault: 'slowdown', toxic_type: 'http_status', action: 'answered', request: 2 })
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  t.match(metrics, new RegExp(`coquin_fault_actions_total\\{proxy="${p.name}",type="http_status",action="answered"\\} 1`))
})

t.test('idle_reset rst_on_reuse: silenced when the flow is forgotten, reset when the client reuses it', async t => {
  const p = await proxy(t, `127.0.0.1:${echo.port}`)
  await p.addFault({ name: 'nat', type: 'idle_reset', stream: 'downstream', attributes: { idle: 30, mode: 'rst_on_reuse' } })
  const c = await connect(t, portOf(p))
  c.on('error', () => {})
  c.write('x')
  await within(readBytes(c, 1), 5000, 'echo')
  await p.waitForEvents({ type: 'fault_acted' }, es => es.length >= 1)
  c.write('again')
  const events = await p.waitForEvents({ type: 'fault_acted' }, es => es.length >= 2)
  t.same(acted(events).map(e => e.action), ['silenced', 'reset'])
  await within(new Promise(resolve => c.on('close', resolve)), 5000, 'the reused connection was reset')
})

t.test('http_close rst_on_reuse: silenced after the response, reset when the next request reuses the connection', async t => {
  const web = http.createServer((_req, res) => res.end('ok'))
  web.listen(0, '127.0.0.1')
  await once(web, 'listening')
  t.teardown(() => { web.closeAllConnections(); web.close() })
  const p = await proxy(t, `127.0.0.1:${(web.address() as net.AddressInfo).port}`, { protocol: 'http' })
  await p.addFault({ name: 'lb', type: 'http_close', attributes: { every: 1, mode: 'rst_on_reuse' } })
  const client = new Client(`http://127.0.0.1:${portOf(p)}`)
  t.teardown(() => client.destroy())
  t.equal(await (await client.request({ method: 'GET', path: '/first' })).body.text(), 'ok', 'the first request is answered')
  const err = await client.request({ method: 'GET', path: '/second' }).then(() => undefined, (e: unknown) => e)
  t.ok(err, 'the second request, on the same connection, fails')
  const events = await p.waitForEvents({ type: 'fault_acted' }, es => es.length >= 2)
  t.same(acted(events).map(e => [e.fault, e.action, e.request]), [['lb', 'silenced', 1], ['lb', 'reset', 2]])
})
