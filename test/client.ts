// coquin/client against an embedded server: the calls a test suite makes, on real sockets.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { builtins } from '../behaviors/index.js'
import { startCoquin } from '../src/server.js'
import { Coquin, CoquinApiError, CoquinUnreachableError, normalizeUrl, type ProxyHandle } from '../src/client/index.js'
import { connect, echoServer, readBytes, within } from './helpers/net.js'

type T = Test

const server = await startCoquin({ port: 0 })
t.teardown(() => server.close())
const coquin = new Coquin(server.url)
const echo = await echoServer(t)
const upstream = `127.0.0.1:${echo.port}`

let n = 0
async function echoProxy(t: T): Promise<ProxyHandle> {
  const p = await coquin.proxy({ name: `client-${++n}`, listen: '127.0.0.1:0', upstream })
  t.teardown(() => p.delete().catch(() => {}))
  return p
}

/** Milliseconds for one echo round trip of a few bytes. */
async function roundTrip(t: T, s: net.Socket): Promise<number> {
  const start = performance.now()
  s.write('ping')
  const back = await within(readBytes(s, 4), 5000, 'echo')
  t.equal(back.toString(), 'ping')
  return performance.now() - start
}

function refused(port: number): Promise<NodeJS.ErrnoException> {
  const s = net.connect(port, '127.0.0.1')
  return within(new Promise((resolve, reject) => {
    s.once('error', resolve)
    s.once('connect', () => { s.destroy(); reject(new Error(`connected to ${port}`)) })
  }), 5000, 'refusal')
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address() as net.AddressInfo
  await new Promise(r => s.close(r))
  return port
}

t.test('proxy() creates a proxy that forwards to a real echo server', async t => {
  const p = await echoProxy(t)
  t.match(p, { listen: /^127\.0\.0\.1:\d+$/, upstream, enabled: true })
  t.ok(p.port > 0, 'port parsed from the bound listen address')
  t.equal(p.host, '127.0.0.1')
  const c = await connect(t, p.port)
  await roundTrip(t, c)
  t.equal((await coquin.get(p.name)).port, p.port, 'get() finds it')
  t.ok((await coquin.list()).some(x => x.name === p.name), 'list() has it')
})

t.test('proxy() reuses a proxy with the same addresses, replaces one with others, adds missing toxics', async t => {
  const spec = { name: 'client-reuse', listen: '127.0.0.1:0', upstream }
  const a = await coquin.proxy(spec)
  t.teardown(() => a.delete().catch(() => {}))
  await a.addFault({ name: 'slow', type: 'latency', attributes: { latency: 1 } })
  const b = await coquin.proxy(spec)
  t.equal(b.port, a.port, 'same addresses: the same listener')
  t.same(b.toxics.map(f => f.name), ['slow'], 'and its faults are kept')
  const withToxics = { ...spec, toxics: [{ type: 'latency', stream: 'upstream' as const, attributes: { latency: 1 } }] }
  const c = await coquin.proxy(withToxics)
  t.same(c.toxics.map(f => f.name).sort(), ['latency_upstream', 'slow'], 'a missing toxic is added')
  const d = await coquin.proxy(withToxics)
  t.equal(d.toxics.length, 2, 'a second call adds nothing (no 409)')
  const other = await echoServer(t)
  const e = await coquin.proxy({ ...spec, upstream: `127.0.0.1:${other.port}` })
  t.equal(e.upstream, `127.0.0.1:${other.port}`, 'other upstream: replaced')
  t.same(e.toxics, [], 'and the old faults are gone')
  const f = await coquin.proxy({ ...spec, upstream: `127.0.0.1:${other.port}`, enabled: false })
  t.equal(f.enabled, false, 'enabled given: applied to a reused proxy')
})

t.test('withFault(latency 200) delays an echo, and the fault is gone after', async t => {
  const p = await echoProxy(t)
  const c = await connect(t, p.port)
  const result = await p.withFault({ type: 'latency', attributes: { latency: 200 } }, async fault => {
    t.match(fault, { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 200 } })
    t.same((await p.faults()).map(f => f.name), ['latency_downstream'])
    const ms = await roundTrip(t, c)
    t.ok(ms >= 190, `echo took ${ms.toFixed(0)} ms with the fault`)
    return 'done'
  })
  t.equal(result, 'done', 'withFault resolves with fn\'s result')
  t.same(await p.faults(), [], 'no fault after fn returns')
  const ms = await roundTrip(t, c)
  t.ok(ms < 190, `echo took ${ms.toFixed(0)} ms without it`)
})

t.test('withFault removes the fault when fn throws, and rethrows fn\'s error', async t => {
  const p = await echoProxy(t)
  await t.rejects(p.withFault({ name: 'boom', type: 'latency', attributes: { latency: 200 } }, async () => {
    t.equal((await p.faults()).length, 1)
    throw new Error('boom')
  }), { message: 'boom' })
  t.same(await p.faults(), [], 'no fault after fn throws')
  await p.withFault({ name: 'reset-inside', type: 'noop' }, () => coquin.reset())
  t.pass('a fault already removed (by a reset inside fn) is fine')
})

t.test('updateFault merges attributes; fault() reads one back', async t => {
  const p = await echoProxy(t)
  await p.addFault({ name: 'slow', type: 'latency', stream: 'both', toxicity: 0.5, attributes: { latency: 100, jitter: 10 } })
  const f = await p.updateFault('slow', { attributes: { latency: 300 } })
  t.match(f, { name: 'slow', stream: 'both', toxicity: 0.5, attributes: { latency: 300, jitter: 10 } })
  t.match(await p.fault('slow'), { attributes: { latency: 300 } })
  await p.removeFault('slow')
  t.same(await p.faults(), [])
})

t.test('disable() refuses connections (ECONNREFUSED); enable() accepts them again', async t => {
  const p = await echoProxy(t)
  const port = p.port
  const open = await connect(t, port)
  const closed = once(open, 'close')
  await p.disable()
  t.equal(p.enabled, false)
  await within(closed, 5000, 'open connection closed by disable')
  t.equal((await refused(port)).code, 'ECONNREFUSED')
  await p.enable()
  t.equal(p.enabled, true)
  t.equal(p.port, port, 're-enabled on the same port, as Toxiproxy (clients keep their address)')
  await roundTrip(t, await connect(t, p.port))
  const again = p.port
  const during = await p.whileDisabled(async () => (await refused(again)).code)
  t.equal(during, 'ECONNREFUSED', 'whileDisabled: refused inside')
  t.equal((await p.refresh()).enabled, true, 'and enabled after')
})

t.test('reset() enables every proxy and clears every fault', async t => {
  const a = await echoProxy(t)
  const b = await echoProxy(t)
  await a.addFault({ type: 'latency', attributes: { latency: 50 } })
  await b.addFault({ type: 'noop', stream: 'upstream' })
  await b.disable()
  await coquin.reset()
  for (const p of [a, b]) {
    await p.refresh()
    t.equal(p.enabled, true, `${p.name} enabled`)
    t.same(p.toxics, [], `${p.name} has no faults`)
  }
})

t.test('errors carry the server\'s status, message and code', async t => {
  const p = await echoProxy(t)
  const notFound = await coquin.get('no-such-proxy').catch(e => e)
  t.ok(notFound instanceof CoquinApiError)
  t.match(notFound, { status: 404, message: 'proxy not found', code: 'COQUIN_ERR_PROXY_NOT_FOUND' })
  await t.rejects(p.removeFault('nope'), { status: 404, message: 'toxic not found' })
  await p.addFault({ name: 'x', type: 'noop' })
  await t.rejects(p.addFault({ name: 'x', type: 'noop' }), { name: 'CoquinApiError', status: 409, message: 'toxic already exists' })
  await t.rejects(coquin.create({ name: p.name, upstream }), { status: 409, message: 'proxy already exists' })
  await t.rejects(p.addFault({ type: 'no_such_type' }), { status: 400, message: 'invalid toxic type' })
  await t.rejects(p.addFault({ type: 'latency', attributes: { latency: -1 } }), { status: 400, code: 'COQUIN_ERR_TOXIC_ATTRIBUTES' })
})

t.test('create() is strict; delete() removes; version() reads the server version', async t => {
  const p = await coquin.create({ name: 'client-strict', upstream, toxics: [{ type: 'noop' }] })
  t.same(p.toxics.map(f => f.name), ['noop_downstream'])
  await p.delete()
  await t.rejects(coquin.get('client-strict'), { status: 404, message: 'proxy not found' })
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(await coquin.version(), pkg.version)
})

t.test('an unreachable control API gives CoquinUnreachableError with the socket error code', async t => {
  const port = await freePort()
  const err = await new Coquin(`127.0.0.1:${port}`).list().catch(e => e)
  t.ok(err instanceof CoquinUnreachableError)
  t.match(err, { code: 'ECONNREFUSED', url: `http://127.0.0.1:${port}`, message: `cannot reach the control API at http://127.0.0.1:${port}: ECONNREFUSED` })
})

t.test('a bearer token is sent when given', async t => {
  const guarded = await startCoquin({ port: 0, token: 's3cret' })
  t.teardown(() => guarded.close())
  await t.rejects(new Coquin(guarded.url).list(), { status: 401, message: 'missing or wrong bearer token' })
  t.same(await new Coquin(guarded.url, { token: 's3cret' }).list(), [])
})

t.test('normalizeUrl accepts host:port and :port, and refuses other schemes', async t => {
  t.equal(normalizeUrl('http://127.0.0.1:8474/'), 'http://127.0.0.1:8474')
  t.equal(normalizeUrl('localhost:9000'), 'http://localhost:9000')
  t.equal(normalizeUrl(':9000'), 'http://127.0.0.1:9000')
  t.throws(() => normalizeUrl('ftp://x:1'), TypeError)
})

// FaultAttributes in src/client/index.ts types each built-in behavior's attributes by hand: keep it in step.
type Schema = {
  type?: string; const?: unknown; anyOf?: Schema[]; items?: Schema; description?: string; default?: unknown
  properties?: Record<string, Schema>; patternProperties?: Record<string, Schema>
}
const tsType = (s: Schema): string =>
  s.anyOf ? s.anyOf.map(tsType).join(' | ')
    : s.const !== undefined ? JSON.stringify(s.const).replaceAll('"', "'")
    : s.type === 'integer' || s.type === 'number' ? 'number'
    : s.type === 'array' ? (s.items?.anyOf ? `(${tsType(s.items)})[]` : `${tsType(s.items ?? {})}[]`)
    : s.type === 'object' && s.properties ? `{ ${Object.entries(s.properties).map(([k, v]) => `${k}?: ${tsType(v)}`).join('; ')} }`
    : s.type === 'object' ? `Record<string, ${s.patternProperties ? Object.values(s.patternProperties).map(tsType).join(' | ') : 'unknown'}>`
    : s.type ?? 'unknown'
const doc = (s: Schema) => {
  const d = s.default !== undefined && JSON.stringify(s.default).length <= 40 ? `; default ${JSON.stringify(s.default)}` : ''
  return s.description ? [`    /** ${s.description}${d}. */`] : []
}

t.test('FaultAttributes in src/client/index.ts matches the built-in behaviors', async t => {
  const want = new Map(builtins.map(b => [b.type, Object.entries(b.attributes.properties as Record<string, Schema>).map(([k, s]) => `${k}?: ${tsType(s)}`)]))
  const src = readFileSync(new URL('../src/client/index.ts', import.meta.url), 'utf8')
  const block = /export interface FaultAttributes \{\n([\s\S]*?)\n\}\n/.exec(src)?.[1] ?? ''
  const have = new Map<string, string[]>()
  let current: string[] = []
  for (const line of block.split('\n')) {
    const entry = /^ {2}(\w+): (?:Record<never, never>|\{)$/.exec(line)
    if (entry) have.set(entry[1]!, current = [])
    const prop = /^ {4}(\w+\?: .+)$/.exec(line)
    if (prop) current.push(prop[1]!)
  }
  const paste = builtins.map(b => {
    const props = Object.entries(b.attributes.properties as Record<string, Schema>)
    if (props.length === 0) return `  ${b.type}: Record<never, never>`
    return [`  ${b.type}: {`, ...props.flatMap(([k, s]) => [
      ...doc(s),
      `    ${k}?: ${tsType(s)}`]), '  }'].join('\n')
  }).join('\n')
  const same = t.same(Object.fromEntries(have), Object.fromEntries(want), 'one entry per behavior, one optional property per attribute')
  if (!same) t.comment(`paste this into FaultAttributes in src/client/index.ts:\n${paste}`)
})

t.test('fault specs are typed per built-in behavior (checked by tsc, never run)', async t => {
  const typed = (p: ProxyHandle) => [
    p.addFault({ type: 'latency', attributes: { latency: 100, jitter: 10, distribution: 'normal', after: 1 } }),
    p.addFault({ type: 'noop', attributes: { count: 3 } }),
    p.addFault({ type: 'a_newer_type', attributes: { anything: 'goes' } }),
    // @ts-expect-error a misspelt attribute of a built-in type
    p.addFault({ type: 'latency', attributes: { latncy: 100 } }),
    // @ts-expect-error a wrong value type
    p.addFault({ type: 'latency', attributes: { distribution: 'gaussian' } }),
    // @ts-expect-error streams are upstream, downstream or both
    p.addFault({ type: 'noop', stream: 'sideways' }),
  ]
  t.type(typed, 'function')
})
