import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { connect, echoServer, hashUntilEnd, listen, proxyTo, registry, sendRandom, until, within, collect } from './helpers/net.js'
import { HIGH_WATER } from '../src/datapath/link.js'

t.test('backpressure: a reader that stops keeps coquin\'s buffers bounded, then everything arrives', async t => {
  for (const toxics of [[], [{ type: 'latency', stream: 'upstream', attributes: { latency: 5 } }]]) {
    let serverSide: net.Socket | undefined
    const sink = await listen(t, s => { serverSide = s; s.pause() })
    const { proxy } = await proxyTo(t, sink.port, toxics)
    const client = await connect(t, proxy.port)
    await until(() => serverSide !== undefined)
    const total = 256 << 20
    const block = Buffer.alloc(1 << 20, 7)
    for (let i = 0; i < total / block.length; i++) client.write(block)   // offered all at once
    const link = [...proxy.links][0]!
    await until(() => link.client.isPaused() && link.upstream.writableLength > 0, 10_000, 'coquin to pause the client')
    const held = () => link.upstream.writableLength + link.up.nodes.reduce((n, x) => n + x.stage.held, 0)
    t.ok(held() <= HIGH_WATER + (1 << 20), `coquin holds ${held()} bytes, bounded by the high-water mark`)
    t.ok(client.writableLength > 128 << 20, 'the rest waits in the client, not in coquin')
    const got = hashUntilEnd(serverSide!)
    serverSide!.resume()
    client.end()
    const { bytes } = await got
    t.equal(bytes, total, `${toxics.length ? 'with a latency fault' : 'fast path'}: all 256 MiB arrive once the reader resumes`)
    serverSide!.end()
    await within(once(client, 'close'), 5000, 'client close')
    await until(() => proxy.connections === 0)
  }
})

t.test('seed: the same seed gives the same toxicity draws, another seed others', async t => {
  const echo = await echoServer(t)
  const pattern = async (seed: number) => {
    const reg = await registry(t, { seed })
    const p = await reg.create({ name: 'seeded', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`,
      toxics: [{ type: 'noop', toxicity: 0.5 }] })
    const hits: boolean[] = []
    for (let i = 0; i < 40; i++) {
      const c = await connect(t, p.port)
      await until(() => p.links.size === 1)
      hits.push([...p.links][0]!.applied.size === 1)
      c.destroy()
      await until(() => p.links.size === 0)
    }
    await reg.close()
    return hits.map(h => (h ? '1' : '0')).join('')
  }
  const a = await pattern(7)
  const b = await pattern(7)
  const c = await pattern(8)
  t.equal(a, b, 'replayable')
  t.not(a, c, 'another seed draws differently')
  t.ok(a.includes('1') && a.includes('0'), `toxicity 0.5 hits some links and not others: ${a}`)
})

t.test('toxicity 0 has no effect at all; stream both acts on both directions', async t => {
  const echo = await echoServer(t)
  const { registry: reg, proxy } = await proxyTo(t, echo.port, [{ name: 'off', type: 'latency', toxicity: 0, attributes: { latency: 10_000 } }])
  const c = await connect(t, proxy.port)
  c.write('x')
  const [d] = await within(once(c, 'data'), 2000, 'echo')
  t.equal(String(d), 'x')
  t.equal([...proxy.links][0]!.applied.size, 0)
  proxy.addFault(reg.makeFault({ name: 'both', type: 'noop', stream: 'both' }))
  const link = [...proxy.links][0]!
  t.equal(link.up.nodes.length, 1)
  t.equal(link.down.nodes.length, 1)
  proxy.removeFault('both')
  t.equal(link.up.nodes.length + link.down.nodes.length, 0)
  c.destroy()
  await until(() => proxy.connections === 0)
})

t.test('faults added and removed live on an open link lose and reorder nothing', async t => {
  const echo = await echoServer(t)
  const { registry: reg, proxy } = await proxyTo(t, echo.port)
  const c = await connect(t, proxy.port)
  const received = hashUntilEnd(c)
  let toggles = 0
  const timer = setInterval(() => {
    const name = `f${toggles % 3}`
    const has = proxy.faults.some(f => f.name === name)
    if (has) proxy.removeFault(name)
    else proxy.addFault(reg.makeFault({ name, type: toggles % 2 ? 'latency' : 'noop', stream: 'both', attributes: toggles % 2 ? { latency: 1, jitter: 1 } : {} }))
    toggles++
  }, 2)
  const sent = await sendRandom(c, 16 << 20, { maxChunk: 64 * 1024 })
  const got = await received
  clearInterval(timer)
  t.ok(toggles > 10, `${toggles} live changes`)
  t.equal(got.hash, sent)
  await until(() => proxy.connections === 0)
})

t.test('after 10,000 links with faults, descriptors and handles are back to baseline', async t => {
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [
    { type: 'latency', stream: 'both', attributes: { latency: 1 } },
    { type: 'noop', stream: 'upstream', toxicity: 0.5 },
  ])
  const fds = () => readdirSync('/proc/self/fd').length
  const handles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length
  const baseFds = fds()
  const baseHandles = handles()
  let done = 0
  let started = 0
  const one = async () => {
    const c = net.connect({ port: proxy.port, host: '127.0.0.1' })
    const closed = collect(c)
    await once(c, 'connect')
    c.end('ping')
    const { data } = await closed
    if (String(data) !== 'ping') throw new Error(`got ${String(data)}`)
    done++
  }
  const workers = Array.from({ length: 100 }, async () => { while (started < 10_000) { started++; await one() } })
  await within(Promise.all(workers), 90_000, '10,000 links')
  t.equal(done, 10_000, 'every link echoed')
  await until(() => proxy.connections === 0 && echo.sockets.size === 0, 10_000, 'links to close')
  await until(() => fds() <= baseFds && handles() <= baseHandles, 10_000, 'descriptors back to baseline')
  t.ok(fds() <= baseFds, `fds ${fds()} <= ${baseFds}`)
  t.ok(handles() <= baseHandles, `handles ${handles()} <= ${baseHandles}`)
})

t.test('64 MiB each way stays byte-exact through every fault that must not alter data', async t => {
  const faults = [
    { type: 'latency', stream: 'both', attributes: { latency: 1, jitter: 1, distribution: 'normal' } },
    { type: 'bandwidth', stream: 'both', attributes: { rate: 2_000_000 } },
    { type: 'slicer', stream: 'both', attributes: { average_size: 16_384, size_variation: 8192 } },
    { type: 'slow_open', stream: 'both', attributes: { delay: 20 } },
    { type: 'slow_close', stream: 'both', attributes: { delay: 20 } },
    { type: 'noop', stream: 'both' },
  ]
  for (const fault of faults) {
    const echo = await echoServer(t)
    const { proxy } = await proxyTo(t, echo.port, [fault])
    const client = await connect(t, proxy.port)
    const received = hashUntilEnd(client)
    const sent = await sendRandom(client, 64 << 20)
    const got = await received
    t.equal(got.bytes, 64 << 20, `${fault.type}: every byte came back`)
    t.equal(got.hash, sent, `${fault.type}: SHA-256 equal`)
    await within(once(client, 'close'), 10_000, 'close')
    await until(() => proxy.connections === 0)
  }
})
