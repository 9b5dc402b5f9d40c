// The unmodified npm package toxiproxy-node-client (what testcontainers-node uses) drives coquin
// through every call it offers, and each call's effect is checked on real traffic.
import t from 'tap'
import { createRequire } from 'node:module'
import { once } from 'node:events'
import { Toxiproxy, ToxiproxyError, Proxy as ClientProxy, Toxic } from 'toxiproxy-node-client'
import { collect, connect, echoServer, within } from './helpers/net.js'
import { echoTime, portOf, withApi } from './helpers/api.js'

interface Latency { latency: number; jitter: number }

/** An echo upstream, coquin's API, and a client pointed at it. */
async function setup(t: { teardown(fn: () => unknown): void }) {
  const echo = await echoServer(t)
  const api = await withApi(t)
  return { ...api, echo, upstream: `127.0.0.1:${echo.port}`, client: new Toxiproxy(api.url) }
}

const failsWith = (status: number) => ({ name: 'Error', message: `Request failed with status code ${status}` })

t.test('createProxy, get, getAll, getVersion', async t => {
  const { client, upstream, url, registry } = await setup(t)
  t.equal(client.getApi(), client.api)
  const p = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  t.ok(p instanceof ClientProxy)
  t.match(p, { name: 'echo', upstream, enabled: true })
  t.match(p.listen, /^127\.0\.0\.1:\d+$/)
  t.not(portOf(p.listen), 0, 'the client learns the bound port')
  t.equal(p.getToxiproxy(), client)
  t.equal(p.getHost(), url)
  t.equal(p.getPath(), `${url}/proxies/echo`)
  t.same(p.toJson(), { enabled: true, listen: p.listen, name: 'echo', upstream })
  t.ok(await echoTime(t, portOf(p.listen)) >= 0, 'traffic flows through it')

  const dup = client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  await t.rejects(dup, failsWith(409))
  const e = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream }).catch((e: unknown) => e)
  t.ok(e instanceof ToxiproxyError, 'the client\'s own error type')
  t.equal(registry.proxies.size, 1)

  const got = await client.get('echo')
  t.same(got.toJson(), p.toJson())
  await t.rejects(client.get('nope'), failsWith(404))

  await client.createProxy({ name: 'other', listen: 'localhost:0', upstream: 'localhost:6379' })
  const all = await client.getAll()
  t.same(Object.keys(all).sort(), ['echo', 'other'])
  t.ok(all.echo instanceof ClientProxy)
  t.equal(all.echo!.listen, p.listen)
  t.match(all.other!.listen, /^127\.0\.0\.1:\d+$/, 'localhost is shown as the address bound')

  t.equal(await client.getVersion(), '{"version": "0.1.0-test"}\n', 'the raw /version text, as Toxiproxy sends it')
})

t.test('toxics: addToxic, getToxic, Toxic.update, Toxic.remove, checked on an echo', async t => {
  const { client, upstream } = await setup(t)
  const p = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  const port = portOf(p.listen)
  t.ok(await echoTime(t, port) < 250, 'fast without a toxic')

  const lag = await p.addToxic<Latency>({ name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } })
  t.ok(lag instanceof Toxic)
  t.match(lag.toJson(), { name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } })
  t.equal(lag.getPath(), `${p.getPath()}/toxics/lag`)
  t.ok(await echoTime(t, port) >= 295, 'the latency toxic delays the echo')

  const got = await p.getToxic<Latency>('lag')
  t.same(got.toJson(), lag.toJson())
  await t.rejects(p.getToxic('nope'), failsWith(404))
  await t.rejects(p.addToxic<Latency>({ name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 1, jitter: 0 } }), failsWith(409))
  await t.rejects(p.addToxic({ name: 'down', type: 'down', stream: 'downstream', toxicity: 1, attributes: {} }), failsWith(400),
    '"down" is in the client\'s type union but is not a toxic')
  await t.rejects(p.addToxic<Latency>({ name: 'half', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 100.5, jitter: 0 } }), failsWith(400))

  // the client POSTs the whole toxic back: name, type and stream must be ignored, attributes merged
  const upd = await lag.update({ ...lag.toJson(), name: 'renamed', stream: 'upstream', type: 'bandwidth', attributes: { latency: 0, jitter: 0 } })
  t.match(upd.toJson(), { name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 0, jitter: 0 } })
  t.ok(await echoTime(t, port) < 250, 'latency 0: fast again')
  const back = await upd.update({ ...upd.toJson(), attributes: { latency: 300, jitter: 0 } })
  t.equal(back.attributes.latency, 300)
  t.ok(await echoTime(t, port) >= 295, 'updated back to 300 ms')

  await back.remove()
  t.ok(await echoTime(t, port) < 250, 'removing the toxic restores speed')
  await t.rejects(p.getToxic('lag'), failsWith(404))
  await t.rejects(back.remove(), failsWith(404))

  const up = await p.addToxic<Latency>({ name: 'up', type: 'latency', stream: 'upstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } })
  t.equal(up.stream, 'upstream')
  t.ok(await echoTime(t, port) >= 295, 'an upstream latency delays the request leg')
  await up.remove()
})

t.test('Proxy.update: disable refuses and closes connections, enable on the same port; upstream moves', async t => {
  const { client, upstream } = await setup(t)
  let hits = 0
  const echo2 = await echoServer(t)
  echo2.on('connection', () => { hits++ })
  const p = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  const port = portOf(p.listen)
  const open = await connect(t, port)
  open.write('x')
  await within(once(open, 'data'), 5000, 'echo')
  const closed = collect(open)

  // testcontainers-node's setEnabled: {enabled, listen, upstream}
  const off = await p.update({ enabled: false, listen: p.listen, upstream })
  t.ok(off instanceof ClientProxy)
  t.same([off.name, off.enabled], ['echo', false])
  await within(closed, 5000, 'open connection closed')
  await t.rejects(connect(t, port), { code: 'ECONNREFUSED' }, 'new connections are refused')

  const on = await off.update({ enabled: true, listen: p.listen, upstream })
  t.same([on.enabled, on.listen], [true, p.listen])
  t.ok(await echoTime(t, port) >= 0, 'accepting again on the same port')

  const moved = await on.update({ enabled: true, listen: p.listen, upstream: `127.0.0.1:${echo2.port}` })
  t.equal(moved.upstream, `127.0.0.1:${echo2.port}`)
  await echoTime(t, port)
  t.equal(hits, 1, 'traffic reaches the new upstream')

  const relisten = await moved.update({ enabled: true, listen: '127.0.0.1:0', upstream: moved.upstream })
  t.not(relisten.listen, '127.0.0.1:0')
  t.ok(await echoTime(t, portOf(relisten.listen)) >= 0, 'serving on the new port')

  const gone = new ClientProxy(client, { name: 'nope', listen: '127.0.0.1:1', upstream, enabled: true, toxics: [] })
  await t.rejects(gone.update({ enabled: false, listen: '127.0.0.1:1', upstream }), failsWith(404))
})

t.test('populate: creates, leaves same-address proxies untouched (toxics kept), replaces others', async t => {
  const { client, upstream, registry } = await setup(t)
  const made = await client.populate([
    { name: 'a', listen: '127.0.0.1:0', upstream },
    { name: 'b', listen: '127.0.0.1:0', upstream, enabled: false },
  ])
  t.same(Object.keys(made), ['a', 'b'])
  t.ok(made.a instanceof ClientProxy)
  t.same([made.a!.enabled, made.b!.enabled], [true, false])
  const portA = portOf(made.a!.listen)
  await made.a!.addToxic<Latency>({ name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } })
  const a = registry.get('a')

  const again = await client.populate([
    { name: 'a', listen: '127.0.0.1:0', upstream },
    { name: 'b', listen: '127.0.0.1:0', upstream: 'localhost:6379' },
  ])
  t.equal(registry.get('a'), a, 'a is the same proxy')
  t.equal(again.a!.listen, made.a!.listen)
  t.equal((await again.a!.getToxic<Latency>('lag')).attributes.latency, 300, 'with its toxic')
  t.ok(await echoTime(t, portA) >= 295, 'still applied to traffic')
  t.same([again.b!.upstream, again.b!.enabled], ['localhost:6379', true], 'b replaced')

  await t.rejects(client.populate([{ name: '', listen: '127.0.0.1:0', upstream }]), failsWith(400))
  t.same(Object.keys(await client.getAll()).sort(), ['a', 'b'])
})

t.test('reset: every toxic removed and every proxy enabled', async t => {
  const { client, upstream } = await setup(t)
  const p = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  const port = portOf(p.listen)
  await p.addToxic<Latency>({ name: 'lag', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } })
  const q = await client.createProxy({ name: 'off', listen: '127.0.0.1:0', upstream })
  await q.update({ enabled: false, listen: q.listen, upstream })
  t.ok(await echoTime(t, port) >= 295)

  t.equal(await client.reset(), undefined)
  t.ok(await echoTime(t, port) < 250, 'the latency is gone')
  await t.rejects(p.getToxic('lag'), failsWith(404))
  const all = await client.getAll()
  t.same([all.echo!.enabled, all.off!.enabled], [true, true])
  t.ok(await echoTime(t, portOf(all.off!.listen)) >= 0, 'the disabled proxy accepts again')
})

t.test('Proxy.remove: the proxy and its port are gone', async t => {
  const { client, upstream, registry } = await setup(t)
  const p = await client.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream })
  const open = await connect(t, portOf(p.listen))
  const closed = collect(open)
  await p.remove()
  await within(closed, 5000, 'connection closed')
  await t.rejects(connect(t, portOf(p.listen)), { code: 'ECONNREFUSED' })
  await t.rejects(client.get('echo'), failsWith(404))
  await t.rejects(p.remove(), failsWith(404))
  t.equal(registry.proxies.size, 0)
})

t.test('the package\'s TestHelper (createProxy, createToxic, removeAllProxies) works against coquin', async t => {
  const { url, registry } = await setup(t)
  // its helpers read the exported URL at call time; point it at this server
  const helper = createRequire(import.meta.url)('toxiproxy-node-client/dist/TestHelper.js') as {
    toxiproxyUrl: string
    createProxy(name: string): Promise<{ proxy: ClientProxy; toxiproxy: Toxiproxy }>
    createToxic<T>(proxy: ClientProxy, type: string, attributes: T): Promise<Toxic<T>>
    removeAllProxies(): Promise<unknown>
  }
  const saved = helper.toxiproxyUrl
  helper.toxiproxyUrl = url
  t.teardown(() => { helper.toxiproxyUrl = saved })
  const { proxy } = await helper.createProxy('helped')
  t.match(proxy.listen, /^127\.0\.0\.1:\d+$/)
  const toxic = await helper.createToxic<Latency>(proxy, 'latency', { latency: 10, jitter: 0 })
  t.match(toxic.toJson(), { name: 'latency_downstream', stream: 'downstream', toxicity: 1 }, 'Toxiproxy\'s defaults')
  await helper.createProxy('helped2')
  t.equal(registry.proxies.size, 2)
  await helper.removeAllProxies()
  t.equal(registry.proxies.size, 0)
})
