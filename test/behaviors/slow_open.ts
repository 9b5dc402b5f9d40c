import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { connect, listen, proxyTo, readBytes, until, within } from '../helpers/net.js'
import type { FaultSpec } from '../../src/faults/fault.js'

async function setup(t: Test, toxics: FaultSpec[]) {
  const acceptedAt: number[] = []
  const echo = await listen(t, s => { acceptedAt.push(performance.now()); s.pipe(s) })
  const { registry, proxy } = await proxyTo(t, echo.port, toxics)
  return { registry, proxy, acceptedAt }
}

t.test('the upstream connect, and so the first echo, come delay ms after the client connects', async t => {
  const delay = 300
  const { proxy, acceptedAt } = await setup(t, [{ type: 'slow_open', attributes: { delay } }])
  const start = performance.now()
  const client = net.connect({ port: proxy.port, host: '127.0.0.1' })
  t.teardown(() => client.destroy())
  client.write('first')
  const back = await within(readBytes(client, 5), 5000, 'first echo')
  const elapsed = performance.now() - start
  t.equal(back.toString(), 'first', 'bytes sent during the delay arrive intact')
  // Timers have 1 ms granularity: the proxy's timer starts no earlier than 1 ms before `start`.
  t.ok(elapsed >= delay - 1, `first echo after ${elapsed.toFixed(1)} ms`)
  t.ok(elapsed < delay + 2000, 'and not much later')
  t.equal(acceptedAt.length, 1)
  t.ok(acceptedAt[0]! - start >= delay - 1, `upstream accepted after ${(acceptedAt[0]! - start).toFixed(1)} ms`)

  client.write('second')
  t.equal((await within(readBytes(client, 6), 1000, 'second echo')).toString(), 'second', 'later bytes are not delayed')
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('added live it leaves open links alone; removed, new connections are not delayed', async t => {
  const { registry, proxy } = await setup(t, [])
  const open = await connect(t, proxy.port)
  await until(() => proxy.connections === 1)
  proxy.addFault(registry.makeFault({ name: 's', type: 'slow_open', attributes: { delay: 60_000 } }))
  open.write('now')
  t.equal((await within(readBytes(open, 3), 2000, 'echo on the open link')).toString(), 'now')
  proxy.removeFault('s')
  const fresh = await connect(t, proxy.port)
  fresh.write('fast')
  t.equal((await within(readBytes(fresh, 4), 2000, 'echo on a new link')).toString(), 'fast')
  open.end()
  fresh.end()
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('toxicity 0: no delay', async t => {
  const { proxy } = await setup(t, [{ type: 'slow_open', toxicity: 0, attributes: { delay: 60_000 } }])
  const c = await connect(t, proxy.port)
  c.write('x')
  t.equal((await within(readBytes(c, 1), 2000, 'echo')).toString(), 'x')
  c.end()
  await within(once(c, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('a client that leaves during the delay does not leak its link', async t => {
  const { proxy } = await setup(t, [{ type: 'slow_open', attributes: { delay: 200 } }])
  const c = await connect(t, proxy.port)
  await until(() => proxy.connections === 1)
  c.end()
  await within(once(c, 'close'), 5000, 'client close')
  await until(() => proxy.connections === 0, 5000, 'link end')
  t.equal(proxy.connections, 0)
})

t.test('bytes then a FIN sent during the delay go upstream in order once connected, and the reply comes back', async t => {
  const { proxy } = await setup(t, [{ type: 'slow_open', attributes: { delay: 150 } }])
  const client = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => client.destroy())
  client.end('request')   // data, then FIN, both while the upstream connect waits
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  await within(once(client, 'end'), 5000, 'the echo and its FIN')
  t.equal(Buffer.concat(chunks).toString(), 'request', 'what was sent during the delay is echoed whole, then the FIN')
  await until(() => proxy.connections === 0, 5000, 'link end')
  t.equal(proxy.connections, 0)
})
