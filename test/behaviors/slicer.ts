import t from 'tap'
import { once } from 'node:events'
import { hashUntilEnd, readBytes, sendRandom, sha256, until, within, withEchoProxy, collect, assertEchoExact } from '../helpers/net.js'
import slicer from '../../behaviors/slicer.js'
import { Catalog } from '../../src/faults/fault.js'
import { realClock } from '../../src/core/clock.js'
import { seededRandom } from '../../src/core/random.js'
import { silentLogger } from '../../src/core/log.js'
import type { LinkView } from '../../src/faults/behavior.js'
import type { Proxy } from '../../src/datapath/proxy.js'

const held = (proxy: Proxy) => {
  const link = [...proxy.links][0]
  return link ? link.down.nodes.reduce((n, x) => n + x.stage.held, 0) : 0
}

/** Runs the stage by itself (delay 0: all synchronous) and returns the pieces it writes for each chunk. */
function slices(attributes: Record<string, unknown>, chunks: Buffer[]): Buffer[] {
  const attrs = new Catalog([slicer]).attributes('slicer', attributes)
  const out: Buffer[] = []
  const link = {
    id: 1, stream: 'downstream', log: silentLogger, clock: realClock, random: seededRandom(1),
    lastActivity: () => 0, reset() {}, close() {}, silence() {}, forget() {}, acted() {}, dropped() {}, corrupted() {},
  } satisfies LinkView
  const stage = slicer.stage!(attrs as never, link, { write: c => out.push(c), end() {} })
  for (const c of chunks) stage.write(c)
  stage.destroy()
  return out
}

t.test('pieces are average_size ± size_variation bytes, never empty, whatever the attributes', async t => {
  const data = Buffer.alloc(20_000, 9)
  const cases: [Record<string, unknown>, number, number][] = [
    [{ average_size: 100, size_variation: 20 }, 80, 120],
    [{ average_size: 64 }, 64, 64],
    [{ average_size: 0, size_variation: 10 }, 1, 1],          // size 0: Toxiproxy panicked
    [{ average_size: 10, size_variation: 50 }, 1, 19],        // variation ≥ average: capped
    [{ average_size: 1, size_variation: 1 }, 1, 1],
  ]
  for (const [attrs, lo, hi] of cases) {
    const pieces = slices(attrs, [data])
    t.same(Buffer.concat(pieces), data, `${JSON.stringify(attrs)}: nothing lost`)
    const body = pieces.slice(0, -1).map(p => p.length)   // the last piece takes the rest
    t.ok(Math.min(...body) >= lo && Math.max(...body) <= hi,
      `${JSON.stringify(attrs)}: pieces from ${Math.min(...body)} to ${Math.max(...body)} bytes, expected ${lo}..${hi}`)
    t.ok(pieces.every(p => p.length >= 1), 'no empty piece')
  }
  const spread = slices({ average_size: 100, size_variation: 20 }, [data]).map(p => p.length)
  const mean = spread.reduce((a, b) => a + b, 0) / spread.length
  t.ok(Math.abs(mean - 100) < 3, `mean piece ${mean.toFixed(1)} bytes`)
})

t.test('with a delay the client sees many small reads, delay µs apart, byte-exact', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'slicer', stream: 'downstream',
    attributes: { average_size: 100, size_variation: 50, delay: 2000 } }])   // 2000 µs = 2 ms
  const sizes: number[] = []
  client.on('data', c => sizes.push(c.length))
  const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251))
  const start = performance.now()
  client.write(data)
  const got = await within(readBytes(client, data.length), 5000, 'echo')
  const elapsed = performance.now() - start
  t.equal(sha256(got), sha256(data), 'byte-exact')
  const median = [...sizes].sort((a, b) => a - b)[sizes.length >> 1]!
  t.ok(sizes.length >= 40, `${sizes.length} reads for 10 000 bytes in pieces of 50..150`)
  t.ok(median >= 50 && median <= 200, `median read ${median} bytes`)
  // at least 67 pieces, 2 ms apart
  t.ok(elapsed >= 66 * 2 * 0.9, `took ${elapsed.toFixed(0)} ms`)
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('4 MiB each way pass byte-exact and in order, FIN after the last piece', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'slicer', stream: 'both',
    attributes: { average_size: 2048, size_variation: 1500, delay: 5 } }])
  await assertEchoExact(t, client, proxy, 4 << 20)
})

t.test('tiny pieces with no delay stay byte-exact', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'slicer', stream: 'both',
    attributes: { average_size: 3, size_variation: 5 } }])
  const received = hashUntilEnd(client)
  const sent = await sendRandom(client, 128 << 10, { maxChunk: 8192 })
  const got = await received
  t.equal(got.bytes, 128 << 10)
  t.equal(got.hash, sent)
  await until(() => proxy.connections === 0)
})

t.test('removal mid-stream sends what is held at once, in order, then the FIN', async t => {
  const { client, proxy, registry } = await withEchoProxy(t, [{ name: 'slow', type: 'slicer', stream: 'downstream',
    attributes: { average_size: 1000, delay: 50_000 } }])   // 1000 bytes per 50 ms: 100 kB would take 5 s
  const received = hashUntilEnd(client)
  const start = performance.now()
  const sent = await sendRandom(client, 100_000, { maxChunk: 16384 })
  await until(() => client.bytesRead > 0 && held(proxy) > 50_000, 5000, 'pieces to start arriving')
  registry.get(proxy.name).removeFault('slow')
  const got = await received
  t.equal(got.bytes, 100_000)
  t.equal(got.hash, sent)
  t.ok(performance.now() - start < 1000, 'the rest came at once')
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
})

t.test('a client reset while pieces are held ends the link', async t => {
  const { client, proxy, echo } = await withEchoProxy(t, [{ type: 'slicer', stream: 'upstream',
    attributes: { average_size: 10, delay: 100_000 } }])
  client.write(Buffer.alloc(1000))
  await until(() => echo.sockets.size === 1)
  const server = [...echo.sockets][0]!
  const closed = collect(server)
  await until(() => server.bytesRead > 0)
  client.resetAndDestroy()
  const { data, error } = await within(closed, 5000, 'server close')
  t.ok(data.length < 1000, `${data.length} bytes got through before the reset`)
  t.equal(error?.code, 'ECONNRESET')
  await until(() => proxy.connections === 0)
})
