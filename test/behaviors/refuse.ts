import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { collect, connect, listen, proxyTo, readBytes, until, within } from '../helpers/net.js'
import type { FaultSpec } from '../../src/faults/fault.js'

/** An echo upstream that counts the connections it accepts, and a proxy in front of it. */
async function setup(t: Test, toxics: FaultSpec[]) {
  let accepted = 0
  const echo = await listen(t, s => { accepted++; s.pipe(s) })
  const { registry, proxy } = await proxyTo(t, echo.port, toxics)
  return { registry, proxy, accepted: () => accepted }
}

/**
 * Connects, says hello and reports how the connection went: 'refused' (the connect failed, ECONNREFUSED),
 * 'reset', or 'echo' if hello came back.
 */
async function attempt(t: Test, port: number): Promise<'refused' | 'reset' | 'echo'> {
  const c = net.connect({ port, host: '127.0.0.1' })
  t.teardown(() => c.destroy())
  const done = collect(c)
  c.write('hello')
  c.on('data', d => { if (d.length > 0) c.end() })
  const { data, error } = await within(done, 5000, 'connection end')
  if (error?.code === 'ECONNREFUSED') return 'refused'
  if (error) {
    t.equal(error.code, 'ECONNRESET', 'a reset')
    t.equal(data.length, 0, 'and no byte')
    return 'reset'
  }
  t.equal(data.toString(), 'hello')
  return 'echo'
}

t.test('refusing every connection closes the listener: connects fail with ECONNREFUSED, as against a closed port', async t => {
  const { proxy, accepted } = await setup(t, [{ type: 'refuse' }])
  for (let i = 0; i < 3; i++) t.equal(await attempt(t, proxy.port), 'refused')
  t.equal(accepted(), 0, 'no upstream connection was made')
  t.equal(proxy.toJSON().enabled, true, 'the proxy is still enabled: only its listener is closed')
  t.match(proxy.toJSON().listen, new RegExp(`:${proxy.port}$`), 'and it keeps its port for when the refusal is lifted')
  t.equal(proxy.connections, 0)
})

t.test('toxicity below 1: a refused connection is accepted, then reset (ECONNRESET)', async t => {
  const { proxy, accepted } = await setup(t, [{ type: 'refuse', toxicity: 0.999999 }])
  for (let i = 0; i < 3; i++) t.equal(await attempt(t, proxy.port), 'reset')
  t.equal(accepted(), 0, 'no upstream connection was made')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('a client that sends nothing gets ECONNRESET, on connect or on its first read', async t => {
  const { proxy } = await setup(t, [{ type: 'refuse', toxicity: 0.999999 }])
  const c = net.connect({ port: proxy.port, host: '127.0.0.1' })
  t.teardown(() => c.destroy())
  let connected = false
  c.on('connect', () => { connected = true })
  const { data, error } = await within(collect(c), 5000, 'close')
  t.equal(error?.code, 'ECONNRESET', `reset ${connected ? 'after' : 'during'} connect`)
  t.equal(data.length, 0)
  await until(() => proxy.connections === 0)
})

t.test('toxicity 0: connections pass', async t => {
  const { proxy, accepted } = await setup(t, [{ type: 'refuse', toxicity: 0 }])
  t.equal(await attempt(t, proxy.port), 'echo')
  t.equal(await attempt(t, proxy.port), 'echo')
  t.equal(accepted(), 2)
  await until(() => proxy.connections === 0)
})

t.test('count 2: the first two connections are reset, the third passes', async t => {
  const { proxy, accepted } = await setup(t, [{ type: 'refuse', attributes: { count: 2 } }])
  const outcomes = []
  for (let i = 0; i < 4; i++) outcomes.push(await attempt(t, proxy.port))
  t.same(outcomes, ['reset', 'reset', 'echo', 'echo'])
  t.equal(accepted(), 2)
  await until(() => proxy.connections === 0)
})

t.test('after 1, count 1: pass, reset, then pass', async t => {
  const { proxy } = await setup(t, [{ type: 'refuse', attributes: { after: 1, count: 1 } }])
  const outcomes = []
  for (let i = 0; i < 3; i++) outcomes.push(await attempt(t, proxy.port))
  t.same(outcomes, ['echo', 'reset', 'echo'])
  await until(() => proxy.connections === 0)
})

t.test('added live it leaves open links alone; removed, new connections pass', async t => {
  const { registry, proxy } = await setup(t, [])
  const open = await connect(t, proxy.port)
  await until(() => proxy.connections === 1)
  proxy.addFault(registry.makeFault({ name: 'r', type: 'refuse' }))
  await proxy.listenerSettled
  t.equal(await attempt(t, proxy.port), 'refused', 'a new connection is refused')
  open.write('still')
  t.equal((await within(readBytes(open, 5), 5000, 'echo')).toString(), 'still', 'the open link still works')
  proxy.removeFault('r')
  await proxy.listenerSettled
  t.equal(await attempt(t, proxy.port), 'echo', 'after removal a new connection passes, on the same port')
  open.end()
  await within(once(open, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})
