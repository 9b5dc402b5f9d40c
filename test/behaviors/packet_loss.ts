import t from 'tap'
import { once } from 'node:events'
import { connect, listen, proxyTo, until, within } from '../helpers/net.js'
import { nullObserver } from '../../src/observe/observer.js'
import type { LinkView } from '../../src/faults/behavior.js'
import { silentLogger } from '../../src/core/log.js'
import { realClock } from '../../src/core/clock.js'
import { seededRandom } from '../../src/core/random.js'
import packetLoss from '../../behaviors/packet_loss.js'

/** Runs n chunks through one packet_loss stage: true for each chunk dropped, in order. */
function run(attributes: { loss_rate: number; correlation: number }, n: number, seed = 7): boolean[] {
  const out: boolean[] = []
  const view: LinkView = {
    id: 1, stream: 'upstream', log: silentLogger, clock: realClock, random: seededRandom(seed),
    lastActivity: () => 0, reset() {}, close() {}, silence() {}, forget() {}, acted() {}, corrupted() {}, dropped: () => { out.push(true) },
  }
  const stage = packetLoss.stage!(attributes, view, { write: () => { out.push(false) }, end() {} })
  const chunk = Buffer.alloc(1)
  for (let i = 0; i < n; i++) stage.write(chunk)
  stage.destroy()
  return out
}

/** Drop rate, P(drop | previous dropped) and mean burst length. */
function stats(d: boolean[]) {
  let drops = 0, afterDrop = 0, dropAfterDrop = 0, bursts = 0
  for (let i = 0; i < d.length; i++) {
    if (d[i]) { drops++; if (i === 0 || !d[i - 1]) bursts++ }
    if (i > 0 && d[i - 1]) { afterDrop++; if (d[i]) dropAfterDrop++ }
  }
  return { rate: drops / d.length, again: dropAfterDrop / afterDrop, burst: drops / bursts }
}

t.test('over a real link: whole chunks are dropped at about loss_rate, the rest arrive intact and in order', async t => {
  const echo = await listen(t, s => { s.setNoDelay(true); s.pipe(s) })
  let dropped = 0
  const { proxy } = await proxyTo(t, echo.port, [{ type: 'packet_loss', stream: 'upstream', attributes: { loss_rate: 0.3 } }], {
    observer: { ...nullObserver, bytesDropped: (_p, _s, n) => { dropped += n } },
  })
  const client = await connect(t, proxy.port)
  client.setNoDelay(true)
  const chunks: Buffer[] = []
  let got = 0
  client.on('data', c => { chunks.push(c); got += c.length })
  const n = 200
  const expected: string[] = []
  let lost = 0
  let partial = 0
  for (let i = 0; i < n; i++) {
    // One message in flight at a time, so that each one reaches the proxy as one chunk.
    const msg = `m${String(i).padStart(4, '0')}\n`
    const before = { got, dropped }
    client.write(msg)
    await until(() => got + dropped === before.got + before.dropped + msg.length, 5000, `message ${i}`)
    if (dropped > before.dropped) { lost++; if (dropped - before.dropped !== msg.length) partial++ }
    else expected.push(msg)
  }
  t.equal(partial, 0, 'each drop takes a whole chunk, never part of one')
  t.equal(Buffer.concat(chunks).toString(), expected.join(''), 'what arrives is exactly the chunks not dropped, whole and in order')
  const sd = Math.sqrt(n * 0.3 * 0.7)
  t.ok(Math.abs(lost - n * 0.3) < 4 * sd, `${lost} of ${n} dropped, expected 60 ± ${(4 * sd).toFixed(0)}`)

  const closed = once(client, 'close')
  client.end()
  await within(once(client, 'end'), 5000, 'the FIN is never dropped: it crosses and the echo server ends too')
  await within(closed, 5000, 'close')
  await until(() => proxy.connections === 0)
  t.equal(proxy.connections, 0)
})

t.test('no correlation: independent drops at loss_rate', async t => {
  const s = stats(run({ loss_rate: 0.1, correlation: 0 }, 200_000))
  t.ok(Math.abs(s.rate - 0.1) < 0.005, `rate ${s.rate}`)
  t.ok(Math.abs(s.again - 0.1) < 0.01, `P(drop | previous dropped) ${s.again}`)
})

t.test('correlation: drops come in bursts while the long-run rate stays loss_rate', async t => {
  const p = 0.1, c = 0.8
  const s = stats(run({ loss_rate: p, correlation: c }, 200_000))
  t.ok(Math.abs(s.rate - p) < 0.01, `rate ${s.rate}`)
  t.ok(Math.abs(s.again - (c + (1 - c) * p)) < 0.02, `P(drop | previous dropped) ${s.again}, expected ${c + (1 - c) * p}`)
  const burst = 1 / ((1 - c) * (1 - p))
  t.ok(Math.abs(s.burst - burst) < 0.5, `mean burst ${s.burst.toFixed(2)} chunks, expected ${burst.toFixed(2)}`)
})

t.test('loss_rate 0 never drops; 1 always does', async t => {
  t.equal(stats(run({ loss_rate: 0, correlation: 0.5 }, 10_000)).rate, 0)
  t.equal(stats(run({ loss_rate: 1, correlation: 0.5 }, 10_000)).rate, 1)
})
