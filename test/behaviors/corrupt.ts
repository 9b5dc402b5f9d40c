import t, { type Test } from 'tap'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { connect, echoServer, proxyTo, readBytes, sha256, until, within } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'
import type { FaultSpec } from '../../src/faults/fault.js'
import type { LinkView } from '../../src/faults/behavior.js'
import { silentLogger } from '../../src/core/log.js'
import { realClock } from '../../src/core/clock.js'
import { seededRandom } from '../../src/core/random.js'
import corrupt from '../../behaviors/corrupt.js'

type T = Test

async function setup(t: T, toxics: FaultSpec[]) {
  const echo = await echoServer(t)
  const corrupted = { upstream: 0, downstream: 0 }
  const { proxy } = await proxyTo(t, echo.port, toxics, {
    observer: { ...nullObserver, bytesCorrupted: (_p, stream, n) => { corrupted[stream as keyof typeof corrupted] += n } },
  })
  const client = await connect(t, proxy.port)
  return { proxy, client, corrupted }
}

/** Writes data in random-sized chunks (honouring backpressure) and resolves with what echoes back. */
async function roundTrip(client: Socket, data: Buffer): Promise<Buffer> {
  const back = readBytes(client, data.length)
  for (let off = 0; off < data.length;) {
    const end = Math.min(data.length, off + 1 + Math.floor(Math.random() * 64 * 1024))
    if (!client.write(data.subarray(off, end))) await within(once(client, 'drain'), 10_000, 'drain')
    off = end
  }
  return within(back, 10_000, 'echo')
}

/** Offsets of bytes that differ, and whether each differs by exactly one bit (and which bits were hit). */
function diff(sent: Buffer, got: Buffer) {
  const offsets: number[] = []
  const bits = new Set<number>()
  let oneBit = true
  for (let i = 0; i < sent.length; i++) {
    const x = sent[i]! ^ got[i]!
    if (x === 0) continue
    offsets.push(i)
    if ((x & (x - 1)) !== 0) oneBit = false
    bits.add(Math.log2(x))
  }
  return { offsets, oneBit, bits }
}

async function finish(t: T, client: Socket, proxy: { connections: number }) {
  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
}

t.test('probability: bytes are hit at the asked rate, each by exactly one bit, nothing else changes', async t => {
  const p = 0.001
  const { proxy, client, corrupted } = await setup(t, [{ type: 'corrupt', stream: 'upstream', attributes: { probability: p } }])
  const sent = randomBytes(1 << 20)
  const got = await roundTrip(client, sent)
  t.equal(got.length, sent.length, 'no byte added or lost')
  const { offsets, oneBit, bits } = diff(sent, got)
  const n = sent.length
  const mean = n * p
  const sd = Math.sqrt(n * p * (1 - p))
  t.ok(Math.abs(offsets.length - mean) < 5 * sd, `${offsets.length} bytes hit, expected ${mean.toFixed(0)} ± ${(5 * sd).toFixed(0)}`)
  t.ok(oneBit, 'every hit byte differs by exactly one bit')
  t.equal(bits.size, 8, 'all 8 bit positions get hit')
  t.equal(corrupted.upstream, offsets.length, 'corrupted bytes are counted')
  t.equal(corrupted.downstream, 0)
  await finish(t, client, proxy)
})

t.test('every_bytes: exactly every Nth byte of the stream is hit, across chunk boundaries', async t => {
  // probability 1 would hit every byte: every_bytes takes precedence.
  const { proxy, client, corrupted } = await setup(t, [
    { type: 'corrupt', stream: 'downstream', attributes: { every_bytes: 1000, probability: 1 } }])
  const sent = randomBytes(1 << 20)
  const got = await roundTrip(client, sent)
  const { offsets, oneBit } = diff(sent, got)
  const expected = Array.from({ length: Math.floor(sent.length / 1000) }, (_, k) => (k + 1) * 1000 - 1)
  t.same(offsets, expected, 'offsets 999, 1999, … and no others')
  t.ok(oneBit, 'each by exactly one bit')
  t.equal(corrupted.downstream, expected.length)
  await finish(t, client, proxy)
})

t.test('probability 0: bytes pass unchanged, in random chunk sizes', async t => {
  const { proxy, client, corrupted } = await setup(t, [{ type: 'corrupt', stream: 'both', attributes: { probability: 0 } }])
  const sent = randomBytes(1 << 20)
  const got = await roundTrip(client, sent)
  t.equal(sha256(got), sha256(sent))
  t.same(corrupted, { upstream: 0, downstream: 0 })
  await finish(t, client, proxy)
})

t.test('the chunk handed to the stage is never altered: the stage passes on a copy', async t => {
  const chunk = Buffer.from('abcdefgh')
  const out: Buffer[] = []
  let hits = 0
  const view: LinkView = {
    id: 1, stream: 'upstream', log: silentLogger, clock: realClock, random: seededRandom(1),
    lastActivity: () => 0, reset() {}, close() {}, silence() {}, forget() {}, acted() {}, dropped() {}, corrupted: n => { hits += n },
  }
  const stage = corrupt.stage!({ probability: 1, every_bytes: 0 }, view, { write: c => out.push(c), end() {} })
  stage.write(chunk)
  stage.destroy()
  t.equal(chunk.toString(), 'abcdefgh', 'the input buffer is untouched')
  t.equal(diff(chunk, out[0]!).offsets.length, 8, 'the output has every byte hit')
  t.equal(hits, 8)
})

t.test('removal: bytes pass unaltered again; FIN passes', async t => {
  const { proxy, client, corrupted } = await setup(t, [{ name: 'c', type: 'corrupt', stream: 'upstream', attributes: { probability: 1 } }])
  const before = await roundTrip(client, Buffer.from('hello'))
  t.equal(diff(Buffer.from('hello'), before).offsets.length, 5)
  proxy.removeFault('c')
  const after = await roundTrip(client, Buffer.from('hello'))
  t.equal(after.toString(), 'hello')
  t.equal(corrupted.upstream, 5)
  await finish(t, client, proxy)
})
