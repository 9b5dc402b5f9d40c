import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { collect, connect, listen, proxyTo, sha256, until, within, withEchoProxy } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 256))

t.test('downstream: exactly `bytes` reach the client, the last chunk truncated, then a FIN', async t => {
  let dropped = 0
  const { client, proxy } = await withEchoProxy(t, [{ type: 'limit_data', stream: 'downstream', attributes: { bytes: 10_000 } }],
    { observer: { ...nullObserver, bytesDropped: (_p, _s, n) => { dropped += n } } })
  const data = pattern(50_000)
  const closed = collect(client)
  client.write(data)
  const got = await within(closed, 3000, 'close')
  t.equal(got.data.length, 10_000, 'exactly 10 000 bytes')
  t.equal(sha256(got.data), sha256(data.subarray(0, 10_000)), 'the first 10 000, unchanged')
  t.equal(got.error, undefined, 'closed with a FIN')
  t.ok(dropped > 0, `${dropped} bytes counted as dropped`)
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('upstream: the server receives exactly `bytes`, counted across chunks', async t => {
  let server: net.Socket | undefined
  const upstream = await listen(t, s => { server = s })
  const { proxy } = await proxyTo(t, upstream.port, [{ type: 'limit_data', stream: 'upstream', attributes: { bytes: 1000 } }])
  const client = await connect(t, proxy.port)
  await until(() => server !== undefined)
  const chunks: Buffer[] = []
  server!.on('data', c => chunks.push(c))
  const ended = once(server!, 'end')
  const closed = collect(client)
  const data = pattern(3000)
  for (let i = 0; i < 3000; i += 300) {   // 300-byte writes, one at a time
    client.write(data.subarray(i, i + 300))
    await until(() => server!.bytesRead >= Math.min(i + 300, 1000) || server!.destroyed, 2000, 'chunk')
    if (server!.bytesRead >= 1000) break
  }
  await within(ended, 3000, 'server end')
  const got = Buffer.concat(chunks)
  t.equal(got.length, 1000, 'exactly 1000 bytes, then a FIN')
  t.same(got, data.subarray(0, 1000))
  const { error } = await within(closed, 3000, 'client close')
  t.equal(error, undefined, 'the client gets a FIN too')
  await until(() => proxy.connections === 0)
})

t.test('a limit met exactly by a chunk closes at once', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'limit_data', stream: 'downstream', attributes: { bytes: 5 } }])
  const closed = collect(client)
  client.write('12345')
  const got = await within(closed, 3000, 'close')
  t.equal(String(got.data), '12345')
  t.equal(got.error, undefined)
  await until(() => proxy.connections === 0)
})

t.test('bytes 0 closes on the first chunk, as Toxiproxy; no traffic, no close', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'limit_data', stream: 'upstream', attributes: { bytes: 0 } }])
  const closed = collect(client)
  const open = await within(closed, 200, 'close').then(() => false, () => true)
  t.ok(open, 'open while idle')
  client.write('x')
  const got = await within(closed, 3000, 'close')
  t.equal(got.data.length, 0)
  await until(() => proxy.connections === 0)
})

t.test('removed before the limit, the stream passes unlimited', async t => {
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'cap', type: 'limit_data', stream: 'both', attributes: { bytes: 100 } }])
  const closed = collect(client)
  client.write(pattern(60))
  await until(() => client.bytesRead === 60, 2000, 'echo')
  registry.get(proxy.name).removeFault('cap')
  client.end(pattern(1000))
  const got = await within(closed, 3000, 'close')
  t.equal(got.data.length, 1060)
  t.equal(got.error, undefined)
  await until(() => proxy.connections === 0)
})
