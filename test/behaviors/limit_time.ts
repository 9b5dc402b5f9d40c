import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { collect, connect, echoServer, proxyTo, readBytes, until, within, withEchoProxy } from '../helpers/net.js'
import { ManualClock } from '../../src/core/clock.js'


async function echo(c: net.Socket, s: string): Promise<string> {
  c.write(s)
  return (await within(readBytes(c, s.length), 5000, 'echo')).toString()
}

t.test('real time: the link is closed cleanly about duration ms after it opened; data flows until then', async t => {
  const duration = 300
  const server = await echoServer(t)
  const { proxy } = await proxyTo(t, server.port, [{ type: 'limit_time', stream: 'both', attributes: { duration } }])
  const start = performance.now()
  const client = net.connect({ port: proxy.port, host: '127.0.0.1' })
  t.teardown(() => client.destroy())
  const closed = collect(client)
  t.equal(await echo(client, 'hello'), 'hello')
  const { error } = await within(closed, 5000, 'close')
  const elapsed = performance.now() - start
  t.equal(error, undefined, 'fin: a clean close')
  t.ok(elapsed >= duration - 1, `closed after ${elapsed.toFixed(1)} ms`)
  t.ok(elapsed < duration + 2000, 'and not much later')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('rst: at exactly duration ms both sides are reset', async t => {
  const clock = new ManualClock()
  const { proxy, client, echo: server } = await withEchoProxy(t,
    [{ type: 'limit_time', stream: 'both', attributes: { duration: 1000, mode: 'rst' } }], { clock })
  await until(() => proxy.connections === 1 && server.sockets.size === 1, 5000, 'link')
  const serverClosed = collect([...server.sockets][0]!)
  const clientClosed = collect(client)
  clock.advance(999)
  t.equal(await echo(client, 'alive'), 'alive', 'at 999 ms data still flows')
  t.equal(proxy.connections, 1)
  clock.advance(1)
  t.equal(proxy.connections, 0, 'at 1000 ms the link is gone')
  t.equal((await within(clientClosed, 5000, 'client close')).error?.code, 'ECONNRESET')
  t.equal((await within(serverClosed, 5000, 'server close')).error?.code, 'ECONNRESET')
})

t.test('added to a live link, the clock starts when the fault is added', async t => {
  const clock = new ManualClock()
  const { proxy, client, registry } = await withEchoProxy(t, [], { clock })
  await until(() => proxy.connections === 1, 5000, 'link')
  clock.advance(5000)
  proxy.addFault(registry.makeFault({ type: 'limit_time', attributes: { duration: 300 } }))
  clock.advance(299)
  t.equal(await echo(client, 'alive'), 'alive')
  const closed = collect(client)
  clock.advance(1)
  t.equal(proxy.connections, 0)
  t.equal((await within(closed, 5000, 'close')).error, undefined, 'closed cleanly')
})

t.test('removal cancels the deadline: the link stays open', async t => {
  const clock = new ManualClock()
  const { proxy, client } = await withEchoProxy(t, [{ name: 'lt', type: 'limit_time', stream: 'both', attributes: { duration: 300 } }], { clock })
  await until(() => proxy.connections === 1, 5000, 'link')
  t.equal(clock.pending, 2, 'one timer per stage')
  proxy.removeFault('lt')
  t.equal(clock.pending, 0, 'both cancelled')
  clock.advance(10_000)
  t.equal(await echo(client, 'still here'), 'still here')
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('duration 0 closes each link as soon as it opens', async t => {
  const clock = new ManualClock()
  const server = await echoServer(t)
  const { proxy } = await proxyTo(t, server.port, [{ type: 'limit_time', attributes: { duration: 0 } }], { clock })
  const c = await connect(t, proxy.port)
  const closed = collect(c)
  await until(() => proxy.connections === 1, 5000, 'link')
  clock.advance(0)
  t.equal(proxy.connections, 0, 'duration 0 closes at once')
  t.equal((await within(closed, 5000, 'close')).data.length, 0)
})
