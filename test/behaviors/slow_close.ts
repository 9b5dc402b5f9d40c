import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { collect, connect, hashUntilEnd, listen, proxyTo, sendRandom, until, within, withEchoProxy, assertEchoExact } from '../helpers/net.js'

t.test('data passes at once; the FIN comes delay ms later', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'slow_close', stream: 'downstream', attributes: { delay: 500 } }])
  let dataAt = 0
  let endAt = 0
  client.on('data', () => { dataAt ||= performance.now() })
  const ended = once(client, 'end').then(() => { endAt = performance.now() })
  const start = performance.now()
  client.end('hello')
  await within(ended, 3000, 'end')
  t.ok(dataAt > 0 && dataAt - start < 250, `data after ${(dataAt - start).toFixed(0)} ms`)
  t.ok(endAt - start >= 500, `FIN after ${(endAt - start).toFixed(0)} ms`)
  t.ok(endAt - start < 1200, 'but not much later')
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('upstream: the server sees the FIN late and can still answer meanwhile (half-close)', async t => {
  let server: net.Socket | undefined
  const upstream = await listen(t, s => { server = s })
  const { proxy } = await proxyTo(t, upstream.port, [{ type: 'slow_close', stream: 'upstream', attributes: { delay: 200 } }])
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  await until(() => server !== undefined)
  const got: Buffer[] = []
  server!.on('data', c => got.push(c))
  const start = performance.now()
  const serverEnd = once(server!, 'end')
  client.end('bye')
  await until(() => got.length > 0, 2000, 'data')
  t.equal(server!.readableEnded, false, 'data arrives before the FIN')
  const reply = once(client, 'data')
  server!.write('still here')
  t.equal(String((await within(reply, 2000, 'reply'))[0]), 'still here')
  await within(serverEnd, 3000, 'server end')
  t.ok(performance.now() - start >= 200, `server saw the FIN after ${(performance.now() - start).toFixed(0)} ms`)
  server!.end()
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('4 MiB each way pass byte-exact', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'slow_close', stream: 'both', attributes: { delay: 50 } }])
  await assertEchoExact(t, client, proxy, 4 << 20)
})

t.test('removal passes a held FIN at once', async t => {
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'slow', type: 'slow_close', stream: 'downstream', attributes: { delay: 60_000 } }])
  const closed = collect(client)
  client.end('x')
  await until(() => [...proxy.links][0]?.down.nodes[0]?.gotEnd === true, 3000, 'the FIN to be held')
  const start = performance.now()
  registry.get(proxy.name).removeFault('slow')
  const { data, error } = await within(closed, 3000, 'close')
  t.ok(performance.now() - start < 500, 'closed right after removal')
  t.equal(String(data), 'x')
  t.equal(error, undefined)
  await until(() => proxy.connections === 0)
})

t.test('a reset from the other side while the FIN is held ends the link', async t => {
  let server: net.Socket | undefined
  const upstream = await listen(t, s => { server = s })
  const { proxy } = await proxyTo(t, upstream.port, [{ type: 'slow_close', stream: 'upstream', attributes: { delay: 60_000 } }])
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  await until(() => server !== undefined)
  const closed = collect(client)
  client.end()
  await until(() => [...proxy.links][0]?.up.nodes[0]?.gotEnd === true, 3000, 'the FIN to be held')
  server!.resetAndDestroy()
  const { error } = await within(closed, 3000, 'client close')
  t.equal(error?.code, 'ECONNRESET', 'the reset is passed on')
  await until(() => proxy.connections === 0)
})
