// Attribute bounds: every numeric attribute of every behavior, through the real control API. Values
// out of range, non-finite, non-integer, too large for a double to hold exactly, or of the wrong
// type are refused with a 400 naming the attribute, and leave the proxy's toxics as they were;
// values in range are taken as given. And no accepted value ever asks the clock for a timer longer
// than Node's setTimeout can hold (2^31 - 1 ms ≈ 24.8 days): Node turns a longer one into 1 ms,
// and a stage that re-arms its timer then spins.
import { PROTOCOLS, type Protocol } from '../src/protocols/index.js'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import net from 'node:net'
import { once } from 'node:events'
import { builtins } from '../behaviors/index.js'
import type { Behavior, HttpRequest, LinkView, Stage } from '../src/faults/behavior.js'
import { realClock, type Clock, type Timer } from '../src/core/clock.js'
import { attributeSchema, Catalog } from '../src/faults/fault.js'
import { silentLogger } from '../src/core/log.js'
import { withApi, type Answer } from './helpers/api.js'
import { connect, echoServer, listen, until } from './helpers/net.js'

/** Node's largest timer: setTimeout(fn, more) fires after 1 ms, with a TimeoutOverflowWarning. */
const TIMER_MAX = 2 ** 31 - 1
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_240_607
t.comment(`fast-check seed ${SEED} (replay with FUZZ_SEED=${SEED})`)

interface NumSchema {
  type: 'integer' | 'number'
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  default?: number
  description?: string
}
type Proto = Protocol
interface Attr { behavior: Behavior; name: string; s: NumSchema; proxy: Proto }

const proxyFor = (b: Behavior): Proto => (b.protocols && !b.protocols.includes('tcp') ? b.protocols[0] as Proto : 'tcp')

/** Every numeric attribute in the catalog, the core's after/count included. */
const attrs: Attr[] = builtins.flatMap(behavior =>
  Object.entries(attributeSchema(behavior).properties as Record<string, { type?: unknown }>)
    .filter(([, s]) => s.type === 'integer' || s.type === 'number')
    .map(([name, s]) => ({ behavior, name, s: s as NumSchema, proxy: proxyFor(behavior) })))

/** ms-valued attributes (the `ms()` helper ends the description with "(ms)"); slicer's delay says MICROSECONDS. */
const unit = (s: NumSchema): 'ms' | 'us' | null =>
  /\(ms\)$/.test(s.description ?? '') ? 'ms' : /MICROSECONDS|µs/.test(s.description ?? '') ? 'us' : null

function inRange(s: NumSchema, v: number): boolean {
  if (!Number.isFinite(v)) return false
  if (s.type === 'integer' && !Number.isInteger(v)) return false
  if (s.minimum !== undefined && v < s.minimum) return false
  if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) return false
  if (s.maximum !== undefined && v > s.maximum) return false
  if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) return false
  return true
}

/** Values that must be refused, as JSON text (some, like 1e999 or NaN, are not JSON a client could build). */
function badValues(s: NumSchema): { label: string; json: string; parses: boolean }[] {
  const out: { label: string; json: string; parses: boolean }[] = []
  const add = (label: string, json: string, parses = true) => out.push({ label, json, parses })
  add('-1', '-1')
  if (s.minimum !== undefined && s.minimum !== -1) add('minimum - 1', String(s.minimum - 1))
  if (s.exclusiveMinimum !== undefined) add('exclusiveMinimum', String(s.exclusiveMinimum))
  if (s.maximum !== undefined) add('maximum + 1', String(s.type === 'integer' ? s.maximum + 1 : s.maximum + 0.5))
  add('1e308', '1e308')
  add('2^53+1', '9007199254740993')
  add('-2^53-1', '-9007199254740993')
  add('1e999 (Infinity once parsed)', '1e999')
  add('-1e999 (-Infinity once parsed)', '-1e999')
  add('"NaN"', '"NaN"')
  add('"Infinity"', '"Infinity"')
  add('"5"', '"5"')
  add('""', '""')
  add('null', 'null')
  add('true', 'true')
  add('[]', '[]')
  add('[5]', '[5]')
  add('{}', '{}')
  add('NaN (not JSON)', 'NaN', false)
  add('Infinity (not JSON)', 'Infinity', false)
  add('0x10 (not JSON)', '0x10', false)
  if (s.type === 'integer') {
    add('1.5', '1.5')
    add('minimum + 0.5', String((s.minimum ?? 0) + 0.5))
    add('1e-7', '1e-7')
  }
  return out.filter(v => !v.parses || !inRange(s, JSON.parse(v.json) as number))
}

/** Values that must be accepted and kept as given. */
function goodValues(s: NumSchema): number[] {
  const vs = new Set<number>()
  if (s.minimum !== undefined) vs.add(s.minimum)
  if (s.exclusiveMinimum !== undefined) vs.add(s.exclusiveMinimum + 0.001)
  if (s.maximum !== undefined) vs.add(s.maximum)
  if (s.default !== undefined) vs.add(s.default)
  for (const v of [0, 1, 0.5, 0.25, 1000]) vs.add(v)
  return [...vs].filter(v => inRange(s, v))
}

// Schemas ---------------------------------------------------------------------------------------

t.test('the catalog has numeric attributes to check, each with a finite minimum and maximum', async t => {
  t.ok(attrs.length >= 30, `${attrs.length} numeric attributes`)
  for (const type of ['latency', 'bandwidth', 'slicer', 'http_delay', 'http_throttle', 'limit_data']) {
    t.ok(attrs.some(a => a.behavior.type === type), `${type} is covered`)
  }
  for (const { behavior, name, s } of attrs) {
    const where = `${behavior.type}.${name}`
    t.ok(s.minimum !== undefined || s.exclusiveMinimum !== undefined, `${where} has a minimum`)
    const max = s.maximum ?? s.exclusiveMaximum
    t.ok(max !== undefined && Number.isFinite(max), `${where} has a finite maximum`)
    if (max === undefined) continue
    // Every accepted integer is exact: 2^53 + 1 cannot be told from 2^53.
    t.ok(max <= Number.MAX_SAFE_INTEGER, `${where}: maximum ${max} ≤ 2^53 - 1`)
    const u = unit(s)
    if (u === 'ms') t.ok(max <= TIMER_MAX, `${where} (ms): maximum ${max} ≤ 2^31 - 1`)
    if (u === 'us') t.ok(max / 1000 <= TIMER_MAX, `${where} (µs): maximum ${max} µs ≤ 2^31 - 1 ms`)
  }
  // Every duration is one of these: a behavior that adds a time attribute without "(ms)" or "µs" is caught here.
  const timed = attrs.filter(a => /delay|latency|jitter|timeout|idle|duration/.test(a.name))
  t.ok(timed.length >= 10)
  for (const a of timed) t.not(unit(a.s), null, `${a.behavior.type}.${a.name} says its unit`)
})

// The API --------------------------------------------------------------------------------------

async function setup(t: Test, clock: Clock = realClock) {
  const echo = await echoServer(t)
  const api = await withApi(t, {}, { clock })
  for (const protocol of PROTOCOLS) {
    const r = await api.call('POST', '/proxies', { name: protocol, listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, protocol })
    if (r.status !== 201) throw new Error(`cannot create the ${protocol} proxy: ${r.text}`)
  }
  return api
}

t.test('refused values: 400 naming the attribute, the toxic list unchanged, on create and on update', async t => {
  const { call, registry } = await setup(t)
  // One fault already on each proxy: a refused request must leave it as it is.
  t.equal((await call('POST', '/proxies/tcp/toxics', { name: 'keep', type: 'latency', attributes: { latency: 7 } })).status, 200)
  t.equal((await call('POST', '/proxies/http/toxics', { name: 'keep', type: 'http_status', attributes: { status: 418 } })).status, 200)
  let requests = 0
  const failures: string[] = []
  // after/count are the core's, one schema for all: every value on one behavior per proxy, a few on the rest.
  const fully = new Set(['latency', 'http_status'])
  for (const { behavior, name, s, proxy } of attrs) {
    const type = behavior.type
    const values = (name === 'after' || name === 'count') && !fully.has(type)
      ? badValues(s).filter(v => ['-1', '1e999 (Infinity once parsed)', '1.5', 'null'].includes(v.label))
      : badValues(s)
    const before = (await call('GET', `/proxies/${proxy}/toxics`)).text
    const faults = () => registry.get(proxy).faults.map(f => f.name).join(',')
    const faultsBefore = faults()
    // An existing toxic of this type, to update.
    const made = await call('POST', `/proxies/${proxy}/toxics`, { name: 'target', type })
    t.equal(made.status, 200, `${type}: a toxic with defaults is accepted`)
    const target = JSON.stringify(made.json)
    // All of an attribute's values at once: the API must keep them apart.
    await Promise.all(values.map(async v => {
      const body = `{"name":"bad","type":"${type}","attributes":{"${name}":${v.json}}}`
      for (const [method, path] of [['POST', `/proxies/${proxy}/toxics`], ['POST', `/proxies/${proxy}/toxics/target`]] as const) {
        requests++
        const r: Answer = await call(method, path, body)
        const what = `${path} ${type}.${name} = ${v.label}`
        if (r.status !== 400) {
          failures.push(`${what}: ${r.status} ${r.text}`)
          if (r.status === 200 && path.endsWith('/toxics')) await call('DELETE', `/proxies/${proxy}/toxics/bad`)   // no cascade of 409s
          continue
        }
        if (v.parses) {
          if (r.json?.code !== 'COQUIN_ERR_TOXIC_ATTRIBUTES') failures.push(`${what}: code ${String(r.json?.code)}`)
          if (!String(r.json?.error).includes(name)) failures.push(`${what}: message does not name ${name}: ${String(r.json?.error)}`)
        } else if (r.json?.code !== 'COQUIN_ERR_BAD_REQUEST') failures.push(`${what}: code ${String(r.json?.code)}`)
      }
      if (faults() !== `${faultsBefore ? faultsBefore + ',' : ''}target`) failures.push(`${type}.${name} = ${v.label}: faults now ${faults()}`)
    }))
    t.equal(JSON.stringify((await call('GET', `/proxies/${proxy}/toxics/target`)).json), target, `${type}.${name}: refused updates left the toxic as it was`)
    t.equal((await call('DELETE', `/proxies/${proxy}/toxics/target`)).status, 204)
    t.equal((await call('GET', `/proxies/${proxy}/toxics`)).text, before, `${type}.${name}: the toxic list is as before`)
  }
  t.same(failures, [], `${requests} refused requests, each a 400 naming the attribute`)
  t.ok(requests > 800, `${requests} requests`)
})

t.test('accepted values are kept exactly as given, on create and on update', async t => {
  const { call } = await setup(t)
  const failures: string[] = []
  let n = 0
  for (const { behavior, name, s, proxy } of attrs) {
    for (const v of goodValues(s)) {
      n++
      const r = await call('POST', `/proxies/${proxy}/toxics`, { name: 'good', type: behavior.type, attributes: { [name]: v } })
      const what = `${behavior.type}.${name} = ${v}`
      if (r.status !== 200) { failures.push(`${what}: ${r.status} ${r.text}`); continue }
      if (r.json.attributes[name] !== v) failures.push(`${what}: stored as ${String(r.json.attributes[name])}`)
      const u = await call('POST', `/proxies/${proxy}/toxics/good`, { attributes: { [name]: v } })
      if (u.status !== 200 || u.json.attributes[name] !== v) failures.push(`${what}: update answered ${u.status} ${u.text}`)
      const got = await call('GET', `/proxies/${proxy}/toxics/good`)
      if (got.json?.attributes?.[name] !== v) failures.push(`${what}: GET shows ${got.text}`)
      await call('DELETE', `/proxies/${proxy}/toxics/good`)
    }
  }
  t.same(failures, [], `${n} values accepted`)
  t.ok(n >= 100)
})

t.test('random numbers: accepted exactly when within the documented bounds (fast-check)', async t => {
  const { call, registry } = await setup(t)
  const number = fc.oneof(
    fc.integer({ min: -1000, max: 100_000 }),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.double({ min: -2, max: 2, noNaN: true }),
    fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 - 1, -0, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON),
  )
  let accepted = 0, refused = 0
  await fc.assert(fc.asyncProperty(fc.constantFrom(...attrs), number, async ({ behavior, name, s, proxy }, v) => {
    const r = await call('POST', `/proxies/${proxy}/toxics`, { name: 'f', type: behavior.type, attributes: { [name]: v } })
    // JSON has no -0: it arrives as 0.
    const ok = inRange(s, Object.is(v, -0) ? 0 : v)
    if (ok) {
      accepted++
      if (r.status !== 200 || r.json.attributes[name] !== v) throw new Error(`${behavior.type}.${name} = ${v}: ${r.status} ${r.text}`)
      if ((await call('DELETE', `/proxies/${proxy}/toxics/f`)).status !== 204) throw new Error('delete failed')
    } else {
      refused++
      if (r.status !== 400 || !String(r.json?.error).includes(name)) throw new Error(`${behavior.type}.${name} = ${v}: ${r.status} ${r.text}`)
    }
    if (registry.get(proxy).faults.length !== 0) throw new Error('a fault was left behind')
  }), { seed: SEED, numRuns: 300 })
  t.ok(accepted > 20 && refused > 20, `${accepted} accepted, ${refused} refused`)
})

// Timers -----------------------------------------------------------------------------------------

/** A clock that records every delay asked of it and never fires. */
function recorder() {
  const asked: number[] = []
  const clock: Clock = {
    now: () => 1_000,
    setTimeout(_fn: () => void, ms: number): Timer { asked.push(ms); return { cancel() {} } },
  }
  return { asked, clock }
}

/** Random sources at the edges: the tails of normal and pareto draws are where huge delays come from. */
const randoms: [string, () => number][] = [
  ['0', () => 0],
  ['1 - 2^-53', () => 1 - 2 ** -53],
  ['2^-53', () => 2 ** -53],
  ['0.5', () => 0.5],
  ['alternating', (() => { let i = 0; return () => (i++ % 2 === 0 ? 1 - 2 ** -53 : 2 ** -53) })()],
]

/** Union-of-literal attributes (distribution, phase, mode…): every value, so every code path is drawn. */
function literalChoices(b: Behavior): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [name, s] of Object.entries(attributeSchema(b).properties as Record<string, { anyOf?: { const?: unknown }[] }>)) {
    const consts = s.anyOf?.map(x => x.const).filter((c): c is string => typeof c === 'string')
    if (consts && consts.length === s.anyOf!.length) out[name] = consts
  }
  return out
}

t.test('no accepted value asks for a timer over 2^31 - 1 ms, whatever the random draw', async t => {
  const catalog = new Catalog(builtins)
  const request: HttpRequest = {
    method: 'GET', target: '/a/b?x=1', path: '/a/b', query: { x: '1' }, version: '1.1', headers: { host: 'a.example' },
    rawHeaders: ['Host', 'a.example'], client: { address: '127.0.0.1', port: 1 }, link: 1, index: 0,
  }
  const bad: string[] = []
  let cases = 0
  for (const b of builtins) {
    const nums = attrs.filter(a => a.behavior === b)
    // Every numeric attribute at its maximum at once, then each alone at its maximum.
    const maxed = Object.fromEntries(nums.filter(a => a.name !== 'after' && a.name !== 'count').map(a => [a.name, a.s.maximum ?? a.s.default]))
    const sets: Record<string, unknown>[] = [maxed, ...Object.keys(maxed).map(k => ({ [k]: maxed[k] }))]
    const choices = Object.entries(literalChoices(b))
    const variants = sets.flatMap(set => choices.length === 0 ? [set]
      : choices.flatMap(([k, vs]) => vs.map(v => ({ ...set, [k]: v }))))
    for (const set of variants) {
      let attributes: Record<string, unknown>
      try {
        attributes = catalog.attributes(b.type, set)
      } catch (err) {
        bad.push(`${b.type} ${JSON.stringify(set)}: refused (${(err as Error).message})`)
        continue
      }
      for (const [rname, random] of randoms) {
        cases++
        const { asked, clock } = recorder()
        const what = `${b.type} ${JSON.stringify(set)} random ${rname}`
        if (b.stage) {
          const link: LinkView = {
            id: 1, stream: 'upstream', log: silentLogger, clock, random, lastActivity: () => clock.now(),
            reset() {}, close() {}, silence() {}, forget() {}, acted() {}, dropped() {}, corrupted() {},
          }
          const stage: Stage = b.stage(attributes as never, link, { write() {}, end() {} })
          for (let i = 0; i < 4; i++) stage.write(Buffer.alloc(1500, i))
          stage.end()
          stage.destroy()
        }
        if (b.connect) {
          const a = b.connect(attributes as never, random)
          if (a.action === 'delay') asked.push(a.ms)
        }
        if (b.request) {
          const fault = { name: b.type, type: b.type, state: b.init?.(attributes as never) }
          const a = b.request(attributes as never, request, fault, { clock, random })
          if (a?.action === 'delay') asked.push(a.ms)
        }
        for (const ms of asked) {
          if (!(Number.isFinite(ms) && ms <= TIMER_MAX)) bad.push(`${what}: a ${ms} ms timer`)
        }
      }
    }
  }
  t.same(bad, [], `${cases} behavior × attributes × random cases`)
})

t.test('through the API and real links: the largest latency and http_delay never overflow a timer', async t => {
  const asked: number[] = []
  // The real clock, recording; a delay it cannot hold is cut to TIMER_MAX so the test itself cannot spin.
  const clock: Clock = {
    now: realClock.now,
    setTimeout(fn, ms) { asked.push(ms); return realClock.setTimeout(fn, Math.min(ms, TIMER_MAX)) },
  }
  const echo = await echoServer(t)
  // An HTTP upstream that never answers: requests are held by http_delay before they get there anyway.
  const http = await listen(t, s => { s.resume() })
  const { call } = await withApi(t, {}, { clock, seed: 7 })
  const max = TIMER_MAX
  // One fault per proxy (two http_delay faults on one proxy add up, in src/protocols/http/stages.ts). uniform and
  // pareto always ask for a long timer at these values; normal draws below -1 σ ask for none (delay 0).
  const proxies = [
    ...['uniform', 'pareto', 'normal', 'paretonormal'].map(d => ({ name: `lat_${d}`, protocol: 'tcp', upstream: echo.port, always: d === 'uniform' || d === 'pareto',
      toxic: { type: 'latency', stream: 'upstream', attributes: { latency: max, jitter: max, distribution: d } } })),
    ...['uniform', 'normal'].map(d => ({ name: `http_${d}`, protocol: 'http', upstream: http.port, always: d === 'uniform',
      toxic: { type: 'http_delay', attributes: { delay: max, jitter: max, distribution: d } } })),
  ]
  for (const p of proxies) {
    t.equal((await call('POST', '/proxies', { name: p.name, listen: '127.0.0.1:0', upstream: `127.0.0.1:${p.upstream}`, protocol: p.protocol })).status, 201)
    const r = await call('POST', `/proxies/${p.name}/toxics`, p.toxic)
    t.equal(r.status, 200, `${p.toxic.type} ${JSON.stringify(p.toxic.attributes)} accepted`)
  }
  const links = 8
  const clients: net.Socket[] = []
  for (const p of proxies) {
    const port = Number((await call('GET', `/proxies/${p.name}`)).json.listen.split(':').pop())
    for (let i = 0; i < links; i++) {
      const c = await connect(t, port)
      c.write(p.protocol === 'tcp' ? 'x' : `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`)
      clients.push(c)
    }
  }
  // Each tcp link arms its latency stage's timer on the first byte; each request asks for its delay.
  const sure = proxies.filter(p => p.always).length * links
  await until(() => asked.filter(ms => ms > 60_000).length >= sure, 5000, 'the links to ask for their long timers')
  const over = asked.filter(ms => !(ms <= TIMER_MAX))
  t.same(over, [], `${asked.length} timers asked for, the longest ${Math.max(...asked)} ms`)
  for (const c of clients) c.destroy()
  await Promise.all(clients.map(c => c.closed ? null : once(c, 'close')))
})
