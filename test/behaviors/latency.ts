import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { hashUntilEnd, readBytes, sendRandom, until, within, withEchoProxy } from '../helpers/net.js'
import type { Proxy } from '../../src/datapath/proxy.js'

/** Round-trip times of n sequential 8-byte ping-pongs through the echo. */
async function pingPong(client: net.Socket, n: number): Promise<number[]> {
  const rtts: number[] = []
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    const reply = readBytes(client, 8)
    client.write(`ping${String(i).padStart(4, '0')}`)
    const got = await within(reply, 5000, 'pong')
    rtts.push(performance.now() - start)
    if (got.toString() !== `ping${String(i).padStart(4, '0')}`) throw new Error(`pong ${i} out of order: ${got}`)
  }
  return rtts
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!

const held = (proxy: Proxy) => {
  const link = [...proxy.links][0]
  return link ? link.down.nodes.reduce((n, x) => n + x.stage.held, 0) : 0
}

t.test('latency 50 ms: the p50 round trip lands within ±5 ms over 40 ping-pongs', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'latency', stream: 'downstream', attributes: { latency: 50 } }])
  const rtts = await pingPong(client, 40)
  const p50 = median(rtts)
  t.ok(Math.abs(p50 - 50) <= 5, `p50 ${p50.toFixed(1)} ms`)
  t.ok(Math.min(...rtts) >= 49, `never early: min ${Math.min(...rtts).toFixed(1)} ms`)
  client.end()
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('jitter with a normal distribution keeps 4 MiB byte-exact and in order', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'latency', stream: 'both',
    attributes: { latency: 5, jitter: 5, distribution: 'normal' } }])
  const received = hashUntilEnd(client)
  const sent = await sendRandom(client, 4 << 20)
  const got = await received
  t.equal(got.bytes, 4 << 20)
  t.equal(got.hash, sent, 'same bytes, same order')
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('a fault added live to an open link applies to it', async t => {
  const { client, proxy, registry } = await withEchoProxy(t)
  const before = median(await pingPong(client, 5))
  t.ok(before < 50, `without the fault: ${before.toFixed(1)} ms`)
  proxy.addFault(registry.makeFault({ type: 'latency', stream: 'upstream', attributes: { latency: 100 } }))
  const after = await pingPong(client, 3)
  t.ok(Math.min(...after) >= 99, `with it: ${after.map(x => x.toFixed(0)).join(', ')} ms`)
  client.end()
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('removing it mid-stream hands on what is held: nothing lost, nothing reordered', async t => {
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'slow', type: 'latency', stream: 'downstream',
    attributes: { latency: 2000 } }])
  const total = 2 << 20
  const received = hashUntilEnd(client)
  const sending = sendRandom(client, total)
  await until(() => held(proxy) > 256 << 10, 5000, 'chunks held')
  t.equal(client.bytesRead, 0, 'nothing arrived yet')
  const start = performance.now()
  registry.get(proxy.name).removeFault('slow')
  const sent = await sending
  const got = await received
  t.ok(performance.now() - start < 1500, 'held chunks went at once, not after the latency')
  t.equal(got.bytes, total)
  t.equal(got.hash, sent)
  await within(once(client, 'close'), 3000, 'close')
  await until(() => proxy.connections === 0)
})
