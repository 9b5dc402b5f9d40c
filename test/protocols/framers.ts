// The RESP and PostgreSQL framers on their own: every value or message boundary found, whatever the chunking
// (property-based: random values, random splits), and what is not the protocol refused with a reason.
import t from 'tap'
import fc from 'fast-check'
import { RespScanner, type RespValue } from '../../src/protocols/redis/resp.js'
import { PgScanner, errorFields, errorResponse, readyForQuery, startupParams, statementOf, PROTOCOL_3 } from '../../src/protocols/postgres/wire.js'

// ── RESP ──────────────────────────────────────────────────────────────────────────────────────────

const line = fc.stringMatching(/^[a-zA-Z0-9 :._-]{0,20}$/)
const bulk = fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b))
/** A RESP3 value as bytes (aggregates nest up to depth 3). */
const value: fc.Arbitrary<string> = fc.letrec<{ v: string }>(tie => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    line.map(s => `+${s}\r\n`),
    line.map(s => `-ERR ${s}\r\n`),
    fc.integer().map(n => `:${n}\r\n`),
    bulk.map(b => `$${b.length}\r\n${b.toString('latin1')}\r\n`),
    fc.constant('$-1\r\n'), fc.constant('*-1\r\n'), fc.constant('_\r\n'), fc.constant('#t\r\n'),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map(d => `,${d}\r\n`),
    fc.bigInt().map(b => `(${b}\r\n`),
    line.map(s => `=${s.length + 4}\r\ntxt:${s}\r\n`),
    line.map(s => `!${s.length + 4}\r\nERR ${s}\r\n`),
    fc.array(tie('v'), { maxLength: 4 }).map(a => `*${a.length}\r\n${a.join('')}`),
    fc.array(tie('v'), { maxLength: 4 }).map(a => `~${a.length}\r\n${a.join('')}`),
    fc.array(fc.tuple(tie('v'), tie('v')), { maxLength: 3 }).map(a => `%${a.length}\r\n${a.map(([k, v]) => k + v).join('')}`),
    fc.array(tie('v'), { minLength: 1, maxLength: 3 }).map(a => `>${a.length}\r\n${a.join('')}`),
  ),
})).v
const replyWithAttribute = fc.tuple(fc.option(fc.tuple(line, line)), value)
  .map(([attr, v]) => (attr ? `|1\r\n+${attr[0]}\r\n+${attr[1]}\r\n` : '') + v)

/** Splits bytes at the given cut points (sorted, deduplicated). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map(c => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let at = 0
  for (const p of [...points, bytes.length]) { if (p > at) { out.push(bytes.subarray(at, p)); at = p } }
  return out
}

t.test('RESP replies: each top-level value ends where it ends, whatever the chunks', async t => {
  fc.assert(fc.property(fc.array(replyWithAttribute, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (replies, cuts) => {
    const bytes = Buffer.from(replies.join(''), 'latin1')
    const ends: number[] = []
    let base = 0
    const s = new RespScanner(false, { head() {}, value: end => { ends.push(base + end) } })
    for (const c of split(bytes, cuts)) {
      const err = s.push(c)
      if (err) throw new Error(err)
      base += c.length
    }
    let at = 0
    const want = replies.map(r => (at += Buffer.byteLength(r, 'latin1')))
    t.same(ends, want)
    return ends.length === want.length && ends.every((e, i) => e === want[i]) && s.atBoundary
  }), { numRuns: 300 })
})

t.test('RESP replies: an error\'s first word and the type byte are reported; attributes belong to their reply', async t => {
  const got: RespValue[] = []
  const s = new RespScanner(false, { head() {}, value: (_e, v) => got.push(v) })
  t.equal(s.push(Buffer.from('-READONLY You can\'t write\r\n!9\r\nLOADING x\r\n|1\r\n+a\r\n+b\r\n:1\r\n>2\r\n+p\r\n+q\r\n')), undefined)
  t.same(got, [{ type: 0x2d, error: 'READONLY' }, { type: 0x21, error: 'LOADING' }, { type: 0x3a }, { type: 0x3e }])
})

t.test('RESP commands: name and first key known before the value; inline commands', async t => {
  const heads: [string[], number][] = []
  const ends: number[] = []
  const s = new RespScanner(true, { head: (a, at) => heads.push([[...a], at]), value: e => ends.push(e) })
  const set = '*3\r\n$3\r\nset\r\n$5\r\nuser:\r\n$10\r\n0123456789\r\n'
  t.equal(s.push(Buffer.from(set + 'GET k\r\n' + '*0\r\n')), undefined)
  t.same(heads, [[['SET', 'user:'], 24], [['GET', 'k'], set.length + 7], [[], set.length + 11]], 'heads: SET before its value, inline, empty')
  t.same(ends, [set.length, set.length + 7, set.length + 11])
  const evalHeads: string[][] = []
  const e = new RespScanner(true, { head: a => evalHeads.push([...a]), value() {} })
  e.push(Buffer.from('*5\r\n$4\r\nEVAL\r\n$6\r\nreturn\r\n$1\r\n1\r\n$3\r\nkey\r\n$3\r\narg\r\n'))
  t.same(evalHeads, [['EVAL', 'return', '1', 'key']], 'EVAL: up to its first key')
})

t.test('RESP: what is not RESP is refused with a reason', async t => {
  const bad = (commands: boolean, text: string) => new RespScanner(commands, { head() {}, value() {} }).push(Buffer.from(text))
  t.equal(bad(false, '?what\r\n'), 'an unknown type byte 0x3f')
  t.equal(bad(false, '$3\r\nabcd\r\n'), 'a bulk string that does not end with CRLF')
  t.equal(bad(false, '*?\r\n'), 'a streamed aggregate')
  t.equal(bad(true, '*1\r\n:1\r\n'), 'a command argument that is not a bulk string')
  t.equal(bad(true, '*x\r\n'), 'a bad array length in a command')
  t.match(bad(true, 'A'.repeat(70_000)), /^a line longer than/)
})

// ── PostgreSQL ────────────────────────────────────────────────────────────────────────────────────

function msg(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length)
  out.write(type, 0, 'latin1')
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}
function startup(params: Record<string, string>): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0')
  const out = Buffer.alloc(8 + body.length)
  out.writeInt32BE(8 + body.length, 0)
  out.writeInt32BE(PROTOCOL_3, 4)
  body.copy(out, 8)
  return out
}

t.test('PostgreSQL: every message boundary found whatever the chunks; heads carry what was asked', async t => {
  const message = fc.tuple(fc.constantFrom('Q', 'P', 'B', 'E', 'S', 'D', 'd', 'X'), fc.uint8Array({ maxLength: 300 }))
    .map(([type, body]) => msg(type, Buffer.from(body)))
  fc.assert(fc.property(fc.array(message, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 12 }), (msgs, cuts) => {
    const first = startup({ user: 'u', database: 'd' })
    const bytes = Buffer.concat([first, ...msgs])
    const ends: number[] = []
    const heads: number[] = []
    let base = 0
    const s = new PgScanner(true, type => (type === 0x51 ? 16 : 0), {
      head: (type, body) => { heads.push(type); if (type === 0x51) t.ok(body.length <= 16) },
      end: at => { ends.push(base + at) },
    })
    for (const c of split(bytes, cuts)) {
      if (s.push(c)) return false
      base += c.length
    }
    let at = 0
    const want = [first, ...msgs].map(m => (at += m.length))
    return ends.length === want.length && ends.every((e, i) => e === want[i]) && heads.length === want.length
  }), { numRuns: 300 })
})

t.test('PostgreSQL: wire helpers', async t => {
  t.same(startupParams(startup({ user: 'alice', database: 'shop', application_name: 'x' }).subarray(8)), { user: 'alice', database: 'shop', application_name: 'x' })
  const e = errorResponse('FATAL', '57P01', 'terminating connection due to administrator command')
  t.same(Object.fromEntries(errorFields(e.subarray(5))), { S: 'FATAL', V: 'FATAL', C: '57P01', M: 'terminating connection due to administrator command' })
  t.same([...readyForQuery('E')], [0x5a, 0, 0, 0, 5, 0x45])
  t.equal(statementOf('  /* hi */ -- x\n (select 1)'), 'SELECT')
  t.equal(statementOf('update t set a = 1'), 'UPDATE')
  t.equal(statementOf(''), '')
  const bad = new PgScanner(true, () => 0, { head() {}, end() {} })
  t.equal(bad.push(Buffer.from('GET / HTTP/1.1\r\n')), 'a startup message of length 1195725856')
})
