import t from 'tap'
import { once } from 'node:events'
import { collect, connect, echoServer, proxyTo, until, within, withEchoProxy } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'

t.test('the first chunk arms it: timeout ms later both sides get a reset, and the data is dropped', async t => {
  let dropped = 0
  const { client, proxy, echo } = await withEchoProxy(t, [{ type: 'reset_peer', stream: 'upstream', attributes: { timeout: 200 } }],
    { observer: { ...nullObserver, bytesDropped: (_p, _s, n) => { dropped += n } } })
  await until(() => echo.sockets.size === 1)
  const server = collect([...echo.sockets][0]!)
  const closed = collect(client)
  const quiet = await within(closed, 250, 'close').then(() => false, () => true)
  t.ok(quiet, 'without traffic it never fires')
  const start = performance.now()
  client.write('doomed')
  const { data, error } = await within(closed, 3000, 'client close')
  const elapsed = performance.now() - start
  t.equal(error?.code, 'ECONNRESET', 'the client sees a reset')
  t.equal(data.length, 0, 'the data was dropped, so nothing came back')
  t.ok(elapsed >= 195 && elapsed < 1000, `reset ${elapsed.toFixed(0)} ms after the first chunk`)
  const up = await within(server, 3000, 'server close')
  t.equal(up.error?.code, 'ECONNRESET', 'the server sees a reset')
  t.equal(up.data.length, 0)
  t.equal(dropped, 6)
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('a FIN arms it too', async t => {
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [{ type: 'reset_peer', stream: 'upstream', attributes: { timeout: 100 } }])
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  const closed = collect(client)
  const start = performance.now()
  client.end()
  const { error } = await within(closed, 3000, 'close')
  t.equal(error?.code, 'ECONNRESET')
  t.ok(performance.now() - start >= 95, 'after the timeout')
  await until(() => proxy.connections === 0)
})

t.test('timeout 0 resets at once; stream both', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'reset_peer', stream: 'both', attributes: { timeout: 0 } }])
  const closed = collect(client)
  client.write('x')
  const { data, error } = await within(closed, 1000, 'close')
  t.equal(error?.code, 'ECONNRESET')
  t.equal(data.length, 0)
  await until(() => proxy.connections === 0)
})

t.test('added live, it arms on the next chunk; removed while armed, it never fires', async t => {
  const { client, proxy, registry } = await withEchoProxy(t)
  client.write('a')
  t.equal(String((await within(once(client, 'data'), 2000, 'echo'))[0]), 'a')
  proxy.addFault(registry.makeFault({ name: 'rst', type: 'reset_peer', stream: 'downstream', attributes: { timeout: 150 } }))
  const closed = collect(client)
  client.write('b')   // its echo arms the stage and is dropped
  await until(() => [...proxy.links][0]!.down.bytes >= 2, 2000, 'echo of b')
  proxy.removeFault('rst')
  const fine = await within(closed, 400, 'close').then(() => false, () => true)
  t.ok(fine, 'no reset after removal')
  const more = once(client, 'data')
  client.write('c')
  t.equal(String((await within(more, 2000, 'echo'))[0]), 'c', 'the stream passes again')
  client.end()
  const { data, error } = await within(closed, 3000, 'close')
  t.equal(error, undefined)
  t.equal(String(data), 'c', 'b was dropped')
  await until(() => proxy.connections === 0)
})
