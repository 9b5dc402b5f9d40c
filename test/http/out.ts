import t from 'tap'
import { Out } from '../../src/protocols/out.js'
import { ManualClock } from '../../src/core/clock.js'

const b = (s: string) => Buffer.from(s, 'latin1')

function sink() {
  const writes: Buffer[] = []
  let ended = false
  return { writes, text: () => Buffer.concat(writes).toString('latin1'), get ended() { return ended }, write: (c: Buffer) => { writes.push(c) }, end: () => { ended = true } }
}

t.test('ranges of one chunk that follow each other go out as one write: the chunk itself when they cover it', async t => {
  const s = sink()
  const out = new Out(s, new ManualClock())
  const chunk = b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  out.writeAt(chunk, 0, 38)
  out.writeAt(chunk, 38, 40)
  t.equal(s.writes.length, 0, 'held until flush')
  out.flush()
  t.equal(s.writes.length, 1)
  t.equal(s.writes[0], chunk, 'the very chunk, not a new view')
  out.writeAt(chunk, 0, 10)
  out.writeAt(chunk, 20, 30)                                  // a gap: two writes
  out.flush()
  t.same(s.writes.slice(1).map(w => w.toString('latin1')), ['HTTP/1.1 2', 'tent-Lengt'])
})

t.test('ranges, buffers and actions keep their order', async t => {
  const s = sink()
  const out = new Out(s, new ManualClock())
  const a = b('aaaa')
  const c = b('cccc')
  const order: string[] = []
  out.writeAt(a, 0, 2)
  out.write(b('BB'))
  out.writeAt(a, 2, 4)                                        // not merged with the first range: a write came between
  out.act(() => order.push(`act after ${s.text()}`))
  out.writeAt(c, 1, 3)
  out.write(b('DD'))
  out.flush()
  t.equal(s.text(), 'aaBBaaccDD')
  t.same(order, ['act after aaBBaa'])
  out.writeAt(c, 0, 0)                                        // empty: nothing
  out.flush()
  t.equal(s.writes.length, 5)
})

t.test('behind a delay, ranges wait in order and go out when it ends; the FIN after them', async t => {
  const clock = new ManualClock()
  const s = sink()
  const out = new Out(s, clock)
  const chunk = b('0123456789')
  out.writeAt(chunk, 0, 3)
  out.delay(100)
  out.writeAt(chunk, 3, 6)
  out.writeAt(chunk, 6, 10)
  out.end()
  t.equal(s.text(), '012', 'what came before the delay went out')
  t.equal(out.held, 7)
  t.notOk(s.ended)
  clock.advance(100)
  t.equal(s.text(), '0123456789')
  t.equal(out.held, 0)
  t.ok(s.ended)
})

t.test('destroy drops a pending range', async t => {
  const s = sink()
  const out = new Out(s, new ManualClock())
  out.writeAt(b('xyz'), 0, 3)
  out.destroy()
  out.flush()
  out.writeAt(b('xyz'), 0, 3)
  out.flush()
  t.equal(s.writes.length, 0)
})
