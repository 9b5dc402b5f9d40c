import t, { type Test } from 'tap'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { collect, connect, listen, proxyTo, readBytes, until, within } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'
import type { FaultSpec } from '../../src/faults/fault.js'

type T = Test

/** An echo upstream that records what it receives, a proxy counting dropped bytes, a connected client. */
async function setup(t: T, toxics: FaultSpec[]) {
  const received: Buffer[] = []
  let serverSide: Socket | undefined
  const echo = await listen(t, s => {
    serverSide = s
    s.on('data', c => received.push(c))
    s.pipe(s)
  })
  const dropped = { upstream: 0, downstream: 0 }
  const { registry, proxy } = await proxyTo(t, echo.port, toxics, {
    observer: { ...nullObserver, bytesDropped: (_p, stream, n) => { dropped[stream as keyof typeof dropped] += n } },
  })
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  await until(() => proxy.connections === 1 && serverSide !== undefined, 5000, 'link')
  const link = [...proxy.links][0]!
  return { registry, proxy, client, link, dropped, received: () => Buffer.concat(received), server: () => serverSide! }
}

t.test('upstream: every byte is dropped, the link stays open, and it heals on removal', async t => {
  const { proxy, client, link, dropped, received } = await setup(t, [{ name: 'bh', type: 'blackhole', stream: 'upstream' }])
  const during = randomBytes(1 << 20)
  let echoed = 0
  client.on('data', c => { echoed += c.length })
  // The client can keep writing: the proxy reads and discards, so its writes complete.
  await within(new Promise<void>((resolve, reject) => client.write(during, err => (err ? reject(err) : resolve()))), 5000, 'write')
  await until(() => dropped.upstream === during.length, 5000, 'all bytes dropped')
  t.equal(dropped.upstream, during.length, 'every byte counted as dropped')
  t.equal(link.client.bytesRead, during.length, 'the proxy read them all')
  t.equal(link.upstream.bytesWritten, 0, 'and forwarded none')
  t.equal(received().length, 0, 'the server got nothing')
  t.equal(echoed, 0, 'so nothing came back')
  t.notOk(client.destroyed || client.readableEnded, 'the client connection is still open')
  t.equal(proxy.connections, 1)

  proxy.removeFault('bh')
  client.write('after')
  const back = await within(readBytes(client, 5), 5000, 'echo after removal')
  t.equal(back.toString(), 'after', 'the first bytes back are those sent after removal: those sent during were lost')
  t.equal(received().toString(), 'after', 'the server received only what was sent after removal')
  t.equal(dropped.upstream, during.length, 'nothing more dropped')

  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('downstream: the server gets the bytes, the client none, until removal', async t => {
  const { proxy, client, dropped, received } = await setup(t, [{ name: 'bh', type: 'blackhole', stream: 'downstream' }])
  let echoed = 0
  client.on('data', c => { echoed += c.length })
  client.write('during')
  await until(() => dropped.downstream === 6, 5000, 'echo dropped')
  t.equal(received().toString(), 'during', 'the server received the bytes')
  t.equal(echoed, 0, 'its answer was dropped')
  proxy.removeFault('bh')
  client.write('after')
  const back = await within(readBytes(client, 5), 5000, 'echo after removal')
  t.equal(back.toString(), 'after')
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('a FIN is held back while active and passed on at removal', async t => {
  const { proxy, client, link, server } = await setup(t, [{ name: 'bh', type: 'blackhole', stream: 'both' }])
  let serverEnded = false
  server().on('end', () => { serverEnded = true })
  const proxyGotFin = once(link.client, 'end')
  client.end('bye')
  await within(proxyGotFin, 5000, 'proxy reads the FIN')
  t.equal(link.upstream.writableEnded, false, 'the proxy has not passed the FIN on')
  t.equal(serverEnded, false)
  t.equal(proxy.connections, 1, 'the link is still open')

  const closed = collect(client)
  proxy.removeFault('bh')
  t.equal(link.upstream.writableEnded, true, 'removal passes the held FIN on')
  await within(once(server(), 'end'), 5000, 'server end')
  const { data, error } = await within(closed, 5000, 'client close')
  t.equal(data.length, 0, 'bye was dropped, so nothing was echoed')
  t.equal(error, undefined, 'the echo server\'s FIN came back: a clean close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('a client RST while blackholed is passed on and ends the link', async t => {
  const { proxy, client, server, dropped } = await setup(t, [{ type: 'blackhole', stream: 'both' }])
  const closed = collect(server())
  client.write('lost')
  // Let the proxy read the data first: data and RST read in one go look like a FIN to libuv (POLLHUP after a
  // partial read), and a FIN is held back by the blackhole.
  await until(() => dropped.upstream === 4, 5000, 'data dropped')
  client.resetAndDestroy()
  const { data, error } = await within(closed, 5000, 'server close')
  t.equal(data.length, 0)
  t.equal(error?.code, 'ECONNRESET')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('toxicity 0: no effect at all', async t => {
  const { proxy, client, dropped } = await setup(t, [{ type: 'blackhole', stream: 'both', toxicity: 0 }])
  client.write('hello')
  t.equal((await within(readBytes(client, 5), 5000, 'echo')).toString(), 'hello')
  t.same(dropped, { upstream: 0, downstream: 0 })
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})
