// Clients that misbehave: vanish mid-write, reset, half-close and keep reading, connect and say nothing,
// or arrive by the hundred and leave at once. For each: what the upstream (or the client) sees, how
// coquin counts the link's end (links closed by reason), that the link leaves the proxy, and that
// descriptors, sockets and timers come back to where they were.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { connect, echoServer, hashUntilEnd, listen, sendRandom, until, within } from './helpers/net.js'
import { baseline, harness } from './helpers/faults.js'
import type { Link } from '../src/datapath/link.js'
import type { FaultSpec } from '../src/faults/fault.js'

/** How a socket ended: `FIN` (a clean end), or the error's code (`ECONNRESET`: a reset). */
function ending(s: net.Socket): Promise<string> {
  let fin = false
  let code: string | undefined
  s.on('end', () => { fin = true })
  s.on('error', (e: NodeJS.ErrnoException) => { code ??= e.code ?? 'error' })
  const closed = new Promise<void>(resolve => s.once('close', () => resolve()))   // not once(): it rejects on 'error'
  return within(closed, 10_000, 'close').then(() => code ?? (fin ? 'FIN' : 'close without FIN'))
}

/** An upstream that reads everything and keeps its sockets; `next()` resolves with the next one accepted. */
async function sinkServer(t: Test, opts: net.ServerOpts = {}) {
  const waiting: ((s: net.Socket) => void)[] = []
  const accepted: net.Socket[] = []
  const server = await listen(t, s => { const w = waiting.shift(); if (w) w(s); else accepted.push(s) }, opts)
  return {
    server,
    next: () => within(new Promise<net.Socket>(resolve => { const s = accepted.shift(); if (s) resolve(s); else waiting.push(resolve) }), 5000, 'the upstream to accept'),
  }
}

const onlyLink = (proxy: { links: Set<Link> }): Link => {
  if (proxy.links.size !== 1) throw new Error(`expected one link, found ${proxy.links.size}`)
  return [...proxy.links][0]!
}

t.test('a client vanishing mid-write: the upstream gets a prefix of the bytes, in order, then a FIN', async t => {
  const sink = await sinkServer(t)
  const { proxy, closedBy } = await harness(t, `127.0.0.1:${sink.server.port}`)
  const leaks = await baseline(t)
  const sent = randomBytes(64 << 20)
  const c = await connect(t, proxy.port)
  const upstream = await sink.next()
  let got = 0
  let inOrder = true
  upstream.on('data', (chunk: Buffer) => {
    if (!chunk.equals(sent.subarray(got, got + chunk.length))) inOrder = false
    got += chunk.length
  })
  const upstreamEnd = ending(upstream)
  c.write(sent)                                         // one write: most of it waits in the client
  await until(() => got >= 1 << 20, 10_000, 'the first MiB upstream')
  t.ok(c.writableLength > 0, `the write is still pending (${c.writableLength} bytes) when the client goes`)
  c.destroy()
  await within(once(upstream, 'end'), 10_000, 'the upstream to see the FIN')
  t.pass('the upstream sees the client go, as a FIN after the bytes coquin had')
  upstream.end()                                        // it keeps its side open (allowHalfOpen) until it is done
  t.equal(await upstreamEnd, 'FIN', 'the upstream\'s socket then closes cleanly')
  t.ok(inOrder, 'every byte that arrived is the sent one, in order')
  t.ok(got > 0 && got < sent.length, `a prefix: ${got} of ${sent.length} bytes`)
  await until(() => proxy.links.size === 0, 5000, 'link to leave')
  t.same(await closedBy(), { client_close: 1 })
  await leaks()
})

t.test('a client sending RST: the upstream sees ECONNRESET, the link is counted as reset', async t => {
  const sink = await sinkServer(t)
  const { proxy, closedBy } = await harness(t, `127.0.0.1:${sink.server.port}`)
  const leaks = await baseline(t)
  for (let i = 0; i < 3; i++) {
    const c = await connect(t, proxy.port)
    const upstream = await sink.next()
    let got = 0
    upstream.on('data', (chunk: Buffer) => { got += chunk.length })
    const upstreamEnd = ending(upstream)
    c.write(Buffer.alloc(100_000, i))
    await until(() => got === 100_000, 5000, 'the upstream to read the client\'s bytes')
    const link = onlyLink(proxy)
    c.resetAndDestroy()
    t.equal(await upstreamEnd, 'ECONNRESET', `client ${i}: the reset is passed on as a reset`)
    await until(() => proxy.links.size === 0, 5000, 'link to leave')
    t.ok(link.client.destroyed && link.upstream.destroyed, 'both of coquin\'s sockets destroyed')
  }
  t.same(await closedBy(), { reset: 3 })
  await leaks()
})

t.test('a client that half-closes and keeps reading gets the upstream\'s whole later response, then the link ends cleanly', async t => {
  for (const toxics of [[], [{ type: 'latency', stream: 'both', attributes: { latency: 5 } }]] as FaultSpec[][]) {
    const what = toxics.length ? 'with a latency fault' : 'fast path'
    const RESPONSE = 8 << 20
    let responded: Promise<string> | undefined
    let request = 0
    // The upstream answers only once the request is over (its FIN), as a server reading to EOF does.
    const up = await listen(t, s => {
      s.on('data', (c: Buffer) => { request += c.length })
      s.on('end', () => { responded = sendRandom(s, RESPONSE) })
    })
    const { proxy, closedBy } = await harness(t, `127.0.0.1:${up.port}`, { toxics })
    const leaks = await baseline(t)
    const c = await connect(t, proxy.port, { allowHalfOpen: true })
    const end = ending(c)
    const received = hashUntilEnd(c)
    c.end(Buffer.alloc(50_000, 'q'))
    const got = await received
    t.equal(request, 50_000, `${what}: the whole request reached the upstream before its FIN`)
    t.equal(got.bytes, RESPONSE, `${what}: the whole response reached the half-closed client`)
    t.equal(got.hash, await responded, `${what}: byte-exact`)
    t.equal(await end, 'FIN', `${what}: then a clean end`)
    await until(() => proxy.links.size === 0, 5000, 'link to leave')
    t.same(await closedBy(), { client_close: 1 }, `${what}: named after the client, whose FIN came first`)
    await leaks()
  }
})

t.test('a client that connects, sends nothing and leaves: the link ends, the upstream sees it go', async t => {
  const echo = await echoServer(t)
  const { proxy, closedBy } = await harness(t, `127.0.0.1:${echo.port}`)
  const leaks = await baseline(t)
  for (const leave of ['end', 'destroy', 'resetAndDestroy'] as const) {
    const c = await connect(t, proxy.port)
    c.on('error', () => {})
    await until(() => proxy.links.size === 1 && onlyLink(proxy).state === 'open' && echo.sockets.size === 1, 5000, 'the link to open')
    const upstream = [...echo.sockets][0]!
    const upstreamEnd = ending(upstream)
    c[leave]()
    t.equal(await upstreamEnd, leave === 'resetAndDestroy' ? 'ECONNRESET' : 'FIN', `${leave}: what the upstream sees`)
    await until(() => proxy.links.size === 0, 5000, 'link to leave')
  }
  t.same(await closedBy(), { client_close: 2, reset: 1 })
  await leaks()
})

t.test('a client that leaves while its link hangs (hang_connect): the link ends at once', async t => {
  const echo = await echoServer(t)
  const { proxy, closedBy } = await harness(t, `127.0.0.1:${echo.port}`, { toxics: [{ type: 'hang_connect' }] })
  const leaks = await baseline(t)
  for (const leave of ['end', 'destroy', 'resetAndDestroy'] as const) {
    const c = await connect(t, proxy.port)
    c.on('error', () => {})
    await until(() => proxy.links.size === 1 && onlyLink(proxy).state === 'hanging', 5000, 'the link to hang')
    c[leave]()
    await until(() => proxy.links.size === 0, 2000, `${leave}: link to leave`)
  }
  t.equal(echo.sockets.size, 0, 'the upstream never saw a connection')
  t.same(await closedBy(), { client_close: 2, reset: 1 })
  await leaks()
})

t.test('a client that leaves during a slow_open delay: the link ends at once and the upstream sees no connection', async t => {
  // coquin reads the client during the delay (holding what it sends), so its RST is seen at once: the link
  // must not wait out the delay and then open an upstream connection for a client that left long ago
  // (a real slow network would not complete that handshake either).
  const DELAY = 1500
  const echo = await echoServer(t)
  let accepted = 0
  echo.on('connection', () => { accepted++ })
  const { proxy, closedBy } = await harness(t, `127.0.0.1:${echo.port}`, { toxics: [{ type: 'slow_open', attributes: { delay: DELAY } }] })
  const leaks = await baseline(t)
  const c = await connect(t, proxy.port)
  c.on('error', () => {})
  await until(() => proxy.links.size === 1, 5000, 'the link')
  t.equal(onlyLink(proxy).state, 'connecting')
  const left = Date.now()
  c.resetAndDestroy()
  const prompt = await until(() => proxy.links.size === 0, DELAY / 3, 'link to leave').then(() => true, () => false)
  t.ok(prompt, 'the link ends well before the delay is over')
  await until(() => proxy.links.size === 0, DELAY * 3, 'link to leave')
  t.comment(`the link ended ${Date.now() - left} ms after the client left (delay ${DELAY} ms)`)
  t.same(await closedBy(), { reset: 1 })
  await leaks()                                         // the delay's timer included: no connect can follow
  t.equal(accepted, 0, 'the upstream never saw a connection')
})

t.test('500 clients connecting and leaving at once (half FIN, half RST): every link ends, counted, nothing leaks', async t => {
  const N = 500
  const echo = await echoServer(t)
  const { proxy, closedBy, opened } = await harness(t, `127.0.0.1:${echo.port}`)
  const leaks = await baseline(t)
  await within(Promise.all(Array.from({ length: N }, (_, i) => new Promise<void>(resolve => {
    const c = net.connect({ port: proxy.port, host: '127.0.0.1' })
    c.on('error', () => {})
    c.on('close', () => resolve())
    c.on('connect', () => { if (i % 2) c.destroy(); else c.resetAndDestroy() })
  }))), 20_000, `${N} clients`)
  await until(() => proxy.links.size === 0 && echo.sockets.size === 0, 15_000, 'every link and upstream socket to close')
  t.equal(await opened(), N, 'every connection was accepted as a link')
  t.same(await closedBy(), { client_close: N / 2, reset: N / 2 }, 'each counted once, by how its client left')
  await leaks()
})
