import t from 'tap'
import { once } from 'node:events'
import { collect, connect, echoServer, proxyTo, until, within, withEchoProxy } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'

/** An observer that counts dropped bytes. */
const counting = () => {
  const c = { dropped: 0, observer: { ...nullObserver, bytesDropped: (_p: string, _s: string, n: number) => { c.dropped += n } } }
  return c
}

t.test('timeout 300: data is dropped and the link closes ~300 ms after it opened', async t => {
  const spy = counting()
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [{ type: 'timeout', stream: 'upstream', attributes: { timeout: 300 } }],
    { observer: spy.observer })
  const start = performance.now()   // the stage starts when the proxy accepts
  const client = await connect(t, proxy.port)
  const closed = collect(client)
  client.write('hello')
  client.write(' world')
  const { data, error } = await within(closed, 3000, 'close')
  const elapsed = performance.now() - start
  t.equal(data.length, 0, 'nothing reached the server, so nothing came back')
  t.equal(error, undefined, 'closed with a FIN, not a reset')
  t.equal(spy.dropped, 11, 'the dropped bytes are counted')
  t.ok(elapsed >= 290 && elapsed < 1000, `closed after ${elapsed.toFixed(0)} ms`)
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('timeout 0 holds the link forever; removing the fault closes it', async t => {
  const spy = counting()
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'hold', type: 'timeout', stream: 'both', attributes: { timeout: 0 } }],
    { observer: spy.observer })
  const closed = collect(client)
  client.write(Buffer.alloc(50_000))
  await until(() => spy.dropped === 50_000, 5000, 'bytes dropped')
  const open = await within(closed, 300, 'close').then(() => false, () => true)
  t.ok(open, 'still open after 300 ms')
  t.equal(proxy.connections, 1)
  registry.get(proxy.name).removeFault('hold')
  const { data, error } = await within(closed, 3000, 'close')
  t.equal(data.length, 0)
  t.equal(error, undefined, 'a FIN')
  await until(() => proxy.connections === 0)
})

t.test('added to an open link, it drops from then on and closes timeout ms after it was added', async t => {
  const { client, proxy, registry } = await withEchoProxy(t)
  client.write('before')
  const [echoed] = await within(once(client, 'data'), 2000, 'echo')
  t.equal(String(echoed), 'before', 'passes before the fault')
  const closed = collect(client)
  const start = performance.now()
  proxy.addFault(registry.makeFault({ type: 'timeout', stream: 'downstream', attributes: { timeout: 200 } }))
  client.write('after')
  const { data } = await within(closed, 3000, 'close')
  const elapsed = performance.now() - start
  t.equal(data.length, 0, 'the echo of "after" was dropped')
  t.ok(elapsed >= 195 && elapsed < 1000, `closed ${elapsed.toFixed(0)} ms after the fault was added`)
  await until(() => proxy.connections === 0)
})

t.test('a FIN still passes, as in Toxiproxy', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } }])
  const closed = collect(client)
  client.end('dropped')
  const { data, error } = await within(closed, 3000, 'close')
  t.equal(data.length, 0)
  t.equal(error, undefined)
  await until(() => proxy.connections === 0)
})

t.test('a client reset ends a link held by timeout 0', async t => {
  const { client, proxy, echo } = await withEchoProxy(t, [{ type: 'timeout', stream: 'both', attributes: { timeout: 0 } }])
  await until(() => echo.sockets.size === 1)
  const server = collect([...echo.sockets][0]!)
  client.resetAndDestroy()
  const { error } = await within(server, 3000, 'server close')
  t.equal(error?.code, 'ECONNRESET')
  await until(() => proxy.connections === 0)
})
