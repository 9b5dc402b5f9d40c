import t, { type Test } from 'tap'
import { once } from 'node:events'
import { collect, connect, listen, proxyTo, readBytes, until, within } from '../helpers/net.js'
import type { FaultSpec } from '../../src/faults/fault.js'

async function setup(t: Test, toxics: FaultSpec[]) {
  let accepted = 0
  const echo = await listen(t, s => { accepted++; s.pipe(s) })
  const { registry, proxy } = await proxyTo(t, echo.port, toxics)
  return { registry, proxy, accepted: () => accepted }
}

t.test('the client is accepted, the upstream never sees a connection, nothing comes back', async t => {
  // count 1: the second connection passes, and shows what the upstream saw by then.
  const { proxy, accepted } = await setup(t, [{ type: 'hang_connect', attributes: { count: 1 } }])
  const hung = await connect(t, proxy.port)
  let received = 0
  hung.on('data', c => { received += c.length })
  await until(() => proxy.connections === 1, 5000, 'link')
  const link = [...proxy.links][0]!
  hung.write('anyone there?')
  await until(() => link.client.bytesRead === 13, 5000, 'the proxy reads what the client sends')
  t.equal(link.upstream.bytesWritten, 0, 'and forwards none of it')

  const other = await connect(t, proxy.port)
  other.write('ping')
  t.equal((await within(readBytes(other, 4), 5000, 'echo')).toString(), 'ping', 'a connection after it passes')
  t.equal(accepted(), 1, 'the upstream accepted only that one: the hung client never reached it')
  t.equal(received, 0, 'the hung client got nothing')
  t.notOk(hung.destroyed || hung.readableEnded, 'and is still connected')
  t.equal(proxy.connections, 2)

  other.end()
  const closed = collect(hung)
  hung.end()
  const { error } = await within(closed, 5000, 'hung client close')
  t.equal(error, undefined, 'a client FIN ends the hanging link cleanly')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
  t.equal(accepted(), 1)
})

t.test('removal closes hanging links with a FIN, so clients retry', async t => {
  const { proxy, accepted } = await setup(t, [{ name: 'h', type: 'hang_connect' }])
  const hung = await connect(t, proxy.port)
  await until(() => proxy.connections === 1, 5000, 'link')
  const closed = collect(hung)
  proxy.removeFault('h')
  const { data, error } = await within(closed, 5000, 'close')
  t.equal(data.length, 0)
  t.equal(error, undefined, 'a FIN, not a reset')
  await until(() => proxy.connections === 0)
  const retry = await connect(t, proxy.port)
  retry.write('again')
  t.equal((await within(readBytes(retry, 5), 5000, 'echo')).toString(), 'again', 'the retry passes')
  t.equal(accepted(), 1)
  retry.end()
  await within(once(retry, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('a client reset ends a hanging link', async t => {
  const { proxy } = await setup(t, [{ type: 'hang_connect' }])
  const hung = await connect(t, proxy.port)
  await until(() => proxy.connections === 1, 5000, 'link')
  hung.resetAndDestroy()
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('toxicity 0: connections pass', async t => {
  const { proxy, accepted } = await setup(t, [{ type: 'hang_connect', toxicity: 0 }])
  const c = await connect(t, proxy.port)
  c.write('hi')
  t.equal((await within(readBytes(c, 2), 5000, 'echo')).toString(), 'hi')
  t.equal(accepted(), 1)
  c.end()
  await within(once(c, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})
