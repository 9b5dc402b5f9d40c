import t, { type Test } from 'tap'
import http from 'node:http'
import type net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { collect, proxyTo, readBytes, until, within, withEchoProxy } from '../helpers/net.js'
import { ManualClock } from '../../src/core/clock.js'


async function echo(c: net.Socket, s: string | Buffer): Promise<Buffer> {
  c.write(s)
  return within(readBytes(c, s.length), 5000, 'echo')
}

/** A keep-alive HTTP server that counts TCP connections and requests. */
async function httpServer(t: Test) {
  const state = { connections: 0, requests: 0, lastResponseAt: 0, sockets: new Set<net.Socket>() }
  const server = http.createServer((_req, res) => {
    state.requests++
    state.lastResponseAt = performance.now()
    res.end('ok')
  })
  server.on('connection', s => { state.connections++; state.sockets.add(s); s.on('close', () => state.sockets.delete(s)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return Object.assign(state, { port: (server.address() as net.AddressInfo).port })
}

/** One GET through a pooling agent; `req` tells whether it went out on a reused connection. */
function get(agent: http.Agent, port: number, timeout?: number) {
  const req = http.get({ host: '127.0.0.1', port, path: '/', agent, ...(timeout ? { timeout } : {}) })
  req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })))
  const done = new Promise<{ body: string; socket: net.Socket }>((resolve, reject) => {
    req.on('error', reject)
    req.on('response', res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ body: Buffer.concat(chunks).toString(), socket: req.socket! }))
      res.on('error', reject)
    })
  })
  return { req, done }
}

function keepAliveAgent(t: Test): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  return agent
}

t.test('rst: an idle pooled connection is reset; the agent sees it close and the next request opens a new one', async t => {
  const server = await httpServer(t)
  const { proxy } = await proxyTo(t, server.port, [{ type: 'idle_reset', stream: 'both', attributes: { idle: 300 } }])
  const agent = keepAliveAgent(t)

  const first = get(agent, proxy.port)
  const r1 = await within(first.done, 5000, 'request 1')
  t.equal(r1.body, 'ok')
  t.equal(first.req.reusedSocket, false)
  let idleError: NodeJS.ErrnoException | undefined
  r1.socket.once('error', err => { idleError = err })   // the agent has its own listener for free sockets too
  await within(new Promise(resolve => r1.socket.once('close', resolve)), 5000, 'the pooled socket closes')
  t.equal(idleError?.code, 'ECONNRESET', 'the idle pooled socket was reset')
  const idleFor = performance.now() - server.lastResponseAt
  t.ok(idleFor >= 300, `reset after ${idleFor.toFixed(1)} ms idle`)
  t.ok(idleFor < 300 + 2000, 'and not much later')
  await until(() => proxy.connections === 0)

  const second = get(agent, proxy.port)
  t.equal((await within(second.done, 5000, 'request 2')).body, 'ok')
  t.equal(second.req.reusedSocket, false, 'request 2 went out on a new connection')
  t.equal(server.connections, 2)
})

t.test('silent: a request on the pooled connection the path forgot is never answered; only a client timeout ends it', async t => {
  const clock = new ManualClock()
  const server = await httpServer(t)
  const { proxy } = await proxyTo(t, server.port, [{ type: 'idle_reset', stream: 'both', attributes: { idle: 300, mode: 'silent' } }], { clock })
  const agent = keepAliveAgent(t)

  const first = get(agent, proxy.port)
  t.equal((await within(first.done, 5000, 'request 1')).body, 'ok')
  clock.advance(299)
  const second = get(agent, proxy.port)
  t.equal((await within(second.done, 5000, 'request 2')).body, 'ok', 'idle 299 ms: the pooled connection works')
  t.equal(second.req.reusedSocket, true)

  clock.advance(300)   // 300 ms after request 2's last byte: the path forgets the flow
  t.equal(proxy.connections, 1, 'neither side was told: the link is still there')
  const link = [...proxy.links][0]!
  const readBefore = link.client.bytesRead
  const sentBefore = link.upstream.bytesWritten
  const third = get(agent, proxy.port, 200)
  const failed = t.rejects(within(third.done, 5000, 'request 3'), { code: 'CLIENT_TIMEOUT' }, 'request 3 fails only by the client\'s own timeout')
  await until(() => link.client.bytesRead > readBefore, 5000, 'the proxy reads request 3')
  await failed
  t.equal(third.req.reusedSocket, true, 'request 3 went out on the pooled connection')
  t.equal(link.upstream.bytesWritten, sentBefore, 'and the proxy forwarded none of it')
  t.equal(server.requests, 2, 'the server never saw request 3')
  t.equal(server.connections, 1)
  t.equal(server.sockets.size, 1, 'and its side of the connection is still open')

  agent.destroy()   // the client leaves: the silenced link ends with it
  await until(() => proxy.connections === 0 && server.sockets.size === 0, 5000, 'link end')
  t.equal(proxy.connections, 0)
})

t.test('rst_on_reuse: the pooled connection looks alive; the request written on it fails with a reset; a retrying client survives', async t => {
  const clock = new ManualClock()
  const server = await httpServer(t)
  const { proxy } = await proxyTo(t, server.port, [{ type: 'idle_reset', stream: 'both', attributes: { idle: 300, mode: 'rst_on_reuse' } }], { clock })
  const agent = keepAliveAgent(t)

  t.equal((await within(get(agent, proxy.port).done, 5000, 'request 1')).body, 'ok')
  clock.advance(300)   // the load balancer forgets the flow, and says nothing
  t.equal(proxy.connections, 1, 'neither side was told: the link is still there')
  const link = [...proxy.links][0]!
  t.equal(link.state, 'silenced')
  const sentBefore = link.upstream.bytesWritten

  const second = get(agent, proxy.port)
  const err = await within(second.done.then(() => null, (e: NodeJS.ErrnoException) => e), 5000, 'request 2')
  t.equal(second.req.reusedSocket, true, 'request 2 went out on the pooled connection')
  t.equal(err?.code, 'ECONNRESET', 'and failed with a reset: the naive client sees ECONNRESET')
  t.equal(link.upstream.bytesWritten, sentBefore, 'none of it was forwarded')
  t.equal(server.requests, 1, 'the server never saw request 2')
  await until(() => proxy.connections === 0, 5000, 'the link ended')

  // What a careful client does: a request that failed on a reused connection is retried on a new one.
  const retrying = async () => {
    for (let attempt = 0; ; attempt++) {
      const r = get(agent, proxy.port)
      try { return { body: (await r.done).body, attempt } } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET' || !r.req.reusedSocket || attempt > 2) throw e
      }
    }
  }
  t.same(await within(retrying(), 5000, 'request 3'), { body: 'ok', attempt: 0 }, 'a fresh connection works at once')
  clock.advance(300)
  t.same(await within(retrying(), 5000, 'request 4'), { body: 'ok', attempt: 1 }, 'after the next idle reset, one retry on a fresh connection')
  t.equal(server.requests, 3)
})

t.test('rst_on_reuse: a FIN from the client on the forgotten link is answered with a reset too', async t => {
  const clock = new ManualClock()
  const { proxy, client } = await withEchoProxy(t, [{ type: 'idle_reset', stream: 'both', attributes: { idle: 100, mode: 'rst_on_reuse' } }], { clock })
  t.equal((await echo(client, 'hi')).toString(), 'hi')
  clock.advance(100)
  const ended = collect(client)
  client.end()
  const { error } = await within(ended, 5000, 'the client\'s end')
  t.equal(error?.code, 'ECONNRESET', 'the client sees a reset')
  await until(() => proxy.connections === 0, 5000, 'the link ended')
})

t.test('traffic every idle/3 keeps the link alive for 3× idle, with one timer per stage; then idle resets it', async t => {
  const clock = new ManualClock()
  const { proxy, client } = await withEchoProxy(t, [{ type: 'idle_reset', stream: 'both', attributes: { idle: 300 } }], { clock })
  await until(() => proxy.connections === 1, 5000, 'link')
  const timers: number[] = []
  for (let i = 0; i < 9; i++) {
    clock.advance(100)
    t.equal((await echo(client, `ping ${i}`)).toString(), `ping ${i}`)
    timers.push(clock.pending)
  }
  const burst = randomBytes(1 << 20)
  t.ok((await echo(client, burst)).equals(burst), 'a 1 MiB burst in many chunks')
  timers.push(clock.pending)
  t.same([...new Set(timers)], [2], 'never more than one timer per stage, however many chunks')
  t.equal(proxy.connections, 1, 'alive after 900 ms of steady traffic')

  const closed = collect(client)
  clock.advance(299)
  t.equal(proxy.connections, 1, '299 ms idle: still open')
  clock.advance(1)
  t.equal(proxy.connections, 0, '300 ms idle: gone')
  t.equal((await within(closed, 5000, 'close')).error?.code, 'ECONNRESET')
})

t.test('fin: both sides are closed cleanly', async t => {
  const clock = new ManualClock()
  const { proxy, client, echo: server } = await withEchoProxy(t, [{ type: 'idle_reset', stream: 'upstream', attributes: { idle: 1000, mode: 'fin' } }], { clock })
  await until(() => proxy.connections === 1 && server.sockets.size === 1, 5000, 'link')
  const serverEnd = once([...server.sockets][0]!, 'end')
  const closed = collect(client)
  clock.advance(1000)
  const { error } = await within(closed, 5000, 'close')
  t.equal(error, undefined)
  await within(serverEnd, 5000, 'server end')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('added to an idle link, it counts from when it was added; removal cancels it', async t => {
  const clock = new ManualClock()
  const { proxy, client, registry } = await withEchoProxy(t, [], { clock })
  await until(() => proxy.connections === 1, 5000, 'link')
  clock.advance(10_000)
  proxy.addFault(registry.makeFault({ name: 'idle', type: 'idle_reset', attributes: { idle: 300 } }))
  clock.advance(299)
  t.equal(proxy.connections, 1, 'not reset for the idle time before it was added')
  proxy.removeFault('idle')
  t.equal(clock.pending, 0, 'its timer is cancelled')
  clock.advance(10_000)
  t.equal((await echo(client, 'alive')).toString(), 'alive')
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})
