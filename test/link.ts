import t from 'tap'
import { once } from 'node:events'
import { connect, echoServer, hashUntilEnd, listen, proxyTo, sendRandom, until, within, withEchoProxy, collect } from './helpers/net.js'

t.test('64 MiB each way passes byte-exact with no fault', async t => {
  const { client, proxy } = await withEchoProxy(t)
  const received = hashUntilEnd(client)
  const sent = await sendRandom(client, 64 << 20)
  const got = await received
  t.equal(got.bytes, 64 << 20)
  t.equal(got.hash, sent, 'SHA-256 of what came back equals what was sent')
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('half-close: a FIN crosses one way while the other way keeps flowing', async t => {
  let serverSide: import('node:net').Socket | undefined
  const server = await listen(t, s => { serverSide = s })
  const { proxy } = await proxyTo(t, server.port)
  const client = await connect(t, proxy.port, { allowHalfOpen: true })
  await until(() => serverSide !== undefined)
  const chunks: Buffer[] = []
  serverSide!.on('data', c => chunks.push(c))
  const gotEnd = once(serverSide!, 'end')
  client.end('bye')
  await within(gotEnd, 5000, 'server end')
  t.equal(Buffer.concat(chunks).toString(), 'bye')
  const back = collect(client)
  serverSide!.end('still talking')
  const { data } = await within(back, 5000, 'client close')
  t.equal(data.toString(), 'still talking')
  await until(() => proxy.connections === 0)
})

t.test('an unreachable upstream closes the client cleanly and is counted', async t => {
  const dead = await listen(t, () => {})
  const port = dead.port
  await new Promise(r => dead.close(r))
  const errors: string[] = []
  const { proxy } = await proxyTo(t, port, [], {
    observer: { ...(await import('../src/observe/observer.js')).nullObserver, upstreamConnectError: (_p, code) => { errors.push(code) } },
  })
  const client = await connect(t, proxy.port)
  const { data, error } = await within(collect(client), 5000, 'close')
  t.equal(data.length, 0)
  t.equal(error, undefined, 'a FIN, not a reset')
  t.same(errors, ['ECONNREFUSED'])
  await until(() => proxy.connections === 0)
})

t.test('a client reset is passed on to the upstream as a reset', async t => {
  let serverSide: import('node:net').Socket | undefined
  const server = await listen(t, s => { serverSide = s })
  const { proxy } = await proxyTo(t, server.port)
  const client = await connect(t, proxy.port)
  await until(() => serverSide !== undefined)
  const closed = collect(serverSide!)
  client.resetAndDestroy()
  const { error } = await within(closed, 5000, 'server close')
  t.equal(error?.code, 'ECONNRESET')
  await until(() => proxy.connections === 0)
})
void echoServer
