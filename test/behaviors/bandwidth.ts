import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { collect, connect, hashUntilEnd, listen, proxyTo, sendRandom, until, within, withEchoProxy, assertEchoExact } from '../helpers/net.js'
import { HIGH_WATER } from '../../src/datapath/link.js'
import type { Proxy } from '../../src/datapath/proxy.js'

/** Bytes held by the stages of the proxy's only link on one direction. */
const held = (proxy: Proxy, dir: 'up' | 'down') => {
  const link = [...proxy.links][0]
  return link ? link[dir].nodes.reduce((n, x) => n + x.stage.held, 0) : 0
}

t.test('rate 1000 KB/s: 2.5 MB takes 2.5 s (±10%), byte-exact', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'bandwidth', stream: 'downstream', attributes: { rate: 1000 } }])
  const total = 2_500_000
  let first = 0
  client.once('data', () => { first = performance.now() })
  const received = hashUntilEnd(client)
  const sent = await sendRandom(client, total)
  const got = await received
  const elapsed = performance.now() - first   // from the first byte received to the last
  t.equal(got.bytes, total)
  t.equal(got.hash, sent, 'same bytes, same order')
  const rate = total / elapsed
  t.ok(rate >= 900 && rate <= 1100, `measured ${rate.toFixed(1)} bytes/ms over ${elapsed.toFixed(0)} ms`)
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('a high rate passes 4 MiB each way byte-exact, in random chunk sizes', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'bandwidth', stream: 'both', attributes: { rate: 500_000 } }])
  await assertEchoExact(t, client, proxy, 4 << 20)
})

t.test('rate 0 stalls with bounded memory; removing the fault delivers everything in order', async t => {
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'stall', type: 'bandwidth', stream: 'upstream', attributes: { rate: 0 } }])
  const total = 16 << 20   // more than loopback's socket buffers can absorb
  const received = hashUntilEnd(client)
  const sending = sendRandom(client, total)
  await until(() => held(proxy, 'up') > HIGH_WATER, 10_000, 'the stage to fill up')
  let most = 0
  const sampler = setInterval(() => { most = Math.max(most, held(proxy, 'up')) }, 2)
  const stalled = await within(sending, 300, 'send').then(() => false, () => true)
  clearInterval(sampler)
  t.ok(stalled, 'the sender is blocked: nothing is forwarded')
  t.equal(client.bytesRead, 0, 'nothing came back')
  t.ok(most <= HIGH_WATER + 65536, `held at most ${most} bytes (high-water mark ${HIGH_WATER})`)
  registry.get(proxy.name).removeFault('stall')
  const sent = await sending
  const got = await received
  t.equal(got.bytes, total)
  t.equal(got.hash, sent, 'every byte, in order')
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('rate 0 holds the FIN behind the data; removal passes both', async t => {
  let server: net.Socket | undefined
  const upstream = await listen(t, s => { server = s })
  const { proxy } = await proxyTo(t, upstream.port, [{ name: 'stall', type: 'bandwidth', stream: 'upstream', attributes: { rate: 0 } }])
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  await until(() => server !== undefined)
  const chunks: Buffer[] = []
  server!.on('data', c => chunks.push(c))
  const ended = once(server!, 'end')
  client.write('hello ')
  client.end('world')
  const link = [...proxy.links][0]!
  await until(() => held(proxy, 'up') === 11 && link.up.nodes[0]!.gotEnd, 5000, 'data and FIN held')
  t.equal(chunks.length, 0, 'nothing forwarded yet')
  proxy.removeFault('stall')
  await within(ended, 5000, 'server end')
  t.equal(Buffer.concat(chunks).toString(), 'hello world', 'data first, then the FIN')
  server!.end()
  await within(once(client, 'close'), 5000, 'client close')
  await until(() => proxy.connections === 0)
})

t.test('after an idle spell data is metered from its arrival: no saved-up burst', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'bandwidth', stream: 'downstream', attributes: { rate: 100 } }])
  // 20 kB at 100 bytes/ms: ~200 ms, whatever came before
  client.write(Buffer.alloc(100, 1))
  await within(once(client, 'data'), 2000, 'first echo')
  const start = performance.now()
  const { data } = await within((client.end(Buffer.alloc(20_000, 2)), collect(client)), 5000, 'close')
  const elapsed = performance.now() - start
  t.equal(data.length, 20_000)
  t.ok(elapsed >= 170 && elapsed < 400, `20 kB at 100 KB/s took ${elapsed.toFixed(0)} ms`)
  await until(() => proxy.connections === 0)
})

t.test('a reset while data is held ends the link and is passed on', async t => {
  let server: net.Socket | undefined
  const upstream = await listen(t, s => { server = s })
  const { proxy } = await proxyTo(t, upstream.port, [{ type: 'bandwidth', stream: 'upstream', attributes: { rate: 0 } }])
  const client = await connect(t, proxy.port)
  await until(() => server !== undefined)
  const closed = collect(server!)
  client.write(Buffer.alloc(10_000))
  await until(() => held(proxy, 'up') === 10_000)
  client.resetAndDestroy()
  const { data, error } = await within(closed, 5000, 'server close')
  t.equal(data.length, 0)
  t.equal(error?.code, 'ECONNRESET')
  await until(() => proxy.connections === 0)
})
