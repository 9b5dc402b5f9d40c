// Partitions (src/control/partition.ts): blackhole, reset and refuse on open and new links, client CIDRs,
// one direction, duration and flap on a manual clock, the API, configs and the CLI.
import t, { type Test } from 'tap'
import net, { type Socket } from 'node:net'
import path from 'node:path'
import { once } from 'node:events'
import { collect, connect, listen, readBytes, registry, until, within } from './helpers/net.js'
import { withApi } from './helpers/api.js'
import { nullObserver } from '../src/observe/observer.js'
import { ManualClock } from '../src/core/clock.js'
import { clientMatcher, parseTime } from '../src/control/partition.js'
import { applyConfig, loadConfig, type ConfigIssue } from '../src/control/config.js'
import { startCoquin } from '../src/server.js'
import { builtins } from '../behaviors/index.js'
import { Coquin, CoquinApiError } from '../src/client/index.js'
import type { RegistryOptions } from '../src/control/registry.js'
import { runCli } from './helpers/cli.js'

/** An echo upstream that records what it gets, a registry counting dropped bytes, and proxy `db` in front. */
async function setup(t: Test, opts: Partial<RegistryOptions> = {}) {
  const received: Buffer[] = []
  const servers: Socket[] = []
  let accepted = 0
  const echo = await listen(t, s => {
    accepted++
    servers.push(s)
    s.on('data', c => received.push(c))
    s.pipe(s)
  })
  let dropped = 0
  const reg = await registry(t, { observer: { ...nullObserver, bytesDropped: (_p, _s, n) => { dropped += n } }, ...opts })
  const proxy = await reg.create({ name: 'db', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  return {
    reg, proxy, echo, servers,
    dropped: () => dropped, accepted: () => accepted, received: () => Buffer.concat(received).toString(),
  }
}

/** Sends and expects the same bytes back. */
async function echoes(s: Socket, text: string): Promise<string> {
  const got = readBytes(s, Buffer.byteLength(text))
  s.write(text)
  return (await within(got, 5000, `echo of ${text}`)).toString()
}

/** Connects, says hello: 'refused' (ECONNREFUSED), 'reset' if the connection was reset, 'echo' if hello came back. */
async function attempt(t: Test, port: number, localAddress?: string): Promise<'refused' | 'reset' | 'echo'> {
  const c = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) })
  t.teardown(() => c.destroy())
  const done = collect(c)
  c.write('hello')
  c.on('data', () => c.end())
  const { data, error } = await within(done, 5000, 'connection end')
  if (error?.code === 'ECONNREFUSED') return 'refused'
  if (error) {
    t.equal(error.code, 'ECONNRESET', 'a reset')
    return 'reset'
  }
  t.equal(data.toString(), 'hello')
  return 'echo'
}

async function endAll(t: Test, proxy: { connections: number }, ...sockets: Socket[]) {
  for (const s of sockets) {
    if (s.destroyed) continue
    const closed = once(s, 'close')
    s.end()
    await within(closed, 5000, 'close')
  }
  await until(() => proxy.connections === 0, 5000, 'links closed')
  t.equal(proxy.connections, 0, 'no link left')
}

t.test('blackhole: open and new links go silent; healing restores flow on both, without a reset', async t => {
  const { reg, proxy, dropped, received } = await setup(t)
  const a = await connect(t, proxy.port)
  t.equal(await echoes(a, 'one'), 'one', 'flows before the cut')
  const errors: Error[] = []
  a.on('error', e => errors.push(e))

  const p = reg.partitions.cut({ name: 'cut', proxies: ['db'] })
  t.match(p.toJSON(), { name: 'cut', proxies: ['db'], direction: 'both', mode: 'blackhole', state: 'cut' })
  a.write('lost')
  await until(() => dropped() === 4, 5000, 'open link: bytes dropped')
  const b = await connect(t, proxy.port)
  b.on('error', e => errors.push(e))
  await until(() => proxy.connections === 2, 5000, 'new link')
  b.write('gone')
  await until(() => dropped() === 8, 5000, 'new link: bytes dropped')
  t.equal(received(), 'one', 'the server got nothing while cut')
  t.equal(a.readableLength + b.readableLength, 0, 'and nothing came back')
  t.same(proxy.toxicsJSON(), [], 'a partition is not listed as a toxic')

  reg.partitions.heal('cut')
  t.equal(reg.partitions.size, 0)
  t.same(proxy.cuts, [])
  t.equal(await echoes(a, 'after'), 'after', 'the surviving open link flows again; what was sent during the cut is lost')
  t.equal(await echoes(b, 'later'), 'later', 'so does the link opened during the cut')
  t.equal(received(), 'oneafterlater')
  t.same(errors, [], 'no reset, no error')
  await endAll(t, proxy, a, b)
})

t.test('blackhole: a FIN is held back while cut and passed on at heal', async t => {
  const { reg, proxy, servers } = await setup(t)
  const a = await connect(t, proxy.port, { allowHalfOpen: true })
  t.equal(await echoes(a, 'x'), 'x')
  const link = [...proxy.links][0]!
  reg.partitions.cut({ name: 'cut', proxies: ['db'], direction: 'upstream' })
  const gotFin = once(link.client, 'end')
  a.end()
  await within(gotFin, 5000, 'the proxy reads the FIN')
  t.equal(link.upstream.writableEnded, false, 'not passed on while cut')
  const serverEnd = once(servers[0]!, 'end')
  reg.partitions.heal('cut')
  await within(serverEnd, 5000, 'the server gets the FIN at heal')
  await within(once(a, 'close'), 5000, 'the echo server ends too')
  await until(() => proxy.connections === 0)
})

t.test('reset: open links get ECONNRESET, new connects are reset before any upstream connection', async t => {
  const { reg, proxy, accepted } = await setup(t)
  const a = await connect(t, proxy.port)
  t.equal(await echoes(a, 'x'), 'x')
  const closed = collect(a)
  reg.partitions.cut({ name: 'r', proxies: ['db'], mode: 'reset' })
  const { error } = await within(closed, 5000, 'open link reset')
  t.equal(error?.code, 'ECONNRESET', 'the open link was reset')
  t.equal(await attempt(t, proxy.port), 'reset', 'a new connection is reset')
  t.equal(accepted(), 1, 'the upstream never saw the new connection')
  reg.partitions.heal('r')
  t.equal(await attempt(t, proxy.port), 'echo', 'healed: new connections pass')
  await until(() => proxy.connections === 0)
})

t.test('refuse: new connects are refused (the listener closes: ECONNREFUSED), open links are left alone', async t => {
  const { reg, proxy } = await setup(t)
  const a = await connect(t, proxy.port)
  t.equal(await echoes(a, 'x'), 'x')
  reg.partitions.cut({ name: 'r', proxies: ['db'], mode: 'refuse' })
  t.equal(await attempt(t, proxy.port), 'refused', 'a new connect is refused, as against a closed port')
  t.equal(await echoes(a, 'still'), 'still', 'the open link still flows')
  reg.partitions.heal('r')
  t.equal(await attempt(t, proxy.port), 'echo')
  await endAll(t, proxy, a)
})

t.test('clients: only links from the listed addresses are cut (127.0.0.2, not 127.0.0.1)', async t => {
  const { reg, proxy } = await setup(t)
  const one = await connect(t, proxy.port)
  const two = await connect(t, proxy.port, { localAddress: '127.0.0.2' })
  await until(() => proxy.connections === 2)
  const twoClosed = collect(two)
  reg.partitions.cut({ name: 'c', proxies: ['db'], mode: 'reset', clients: ['127.0.0.2/32'] })
  t.equal((await within(twoClosed, 5000, 'link from .2 reset')).error?.code, 'ECONNRESET', 'the open link from 127.0.0.2 was reset')
  t.equal(await echoes(one, 'fine'), 'fine', 'the open link from 127.0.0.1 was not')
  t.equal(await attempt(t, proxy.port, '127.0.0.2'), 'reset', 'a new link from 127.0.0.2 is reset')
  t.equal(await attempt(t, proxy.port, '127.0.0.1'), 'echo', 'a new link from 127.0.0.1 passes')
  reg.partitions.heal('c')

  // Blackhole with a CIDR: the .2 link goes silent, the .1 link flows.
  const three = await connect(t, proxy.port, { localAddress: '127.0.0.4' })
  reg.partitions.cut({ name: 'bh', proxies: ['db'], clients: ['127.0.0.2/31'] })
  const four = await connect(t, proxy.port, { localAddress: '127.0.0.2' })
  t.equal(await echoes(three, 'three'), 'three', '127.0.0.4 is outside 127.0.0.2/31')
  t.equal(await echoes(one, 'one'), 'one')
  await until(() => proxy.connections === 3)
  const link4 = [...proxy.links].find(l => l.client.remoteAddress === '127.0.0.2')!
  four.write('four')
  await until(() => link4.bytesUpstream === 4, 5000, 'the proxy read it')
  t.equal(link4.upstream.bytesWritten, 0, 'and dropped it: 127.0.0.2 is inside')
  reg.partitions.heal('bh')
  t.equal(await echoes(four, 'back'), 'back')
  await endAll(t, proxy, one, three, four)
})

t.test('client matching: addresses, CIDRs, IPv6 and IPv4-mapped IPv6', async t => {
  const m = clientMatcher(['127.0.0.0/8', '::1', '2001:db8::/32'])
  t.ok(m('127.0.0.2'))
  t.ok(m('::ffff:127.0.0.2'), 'an IPv4-mapped client matches the IPv4 range')
  t.ok(m('::1'))
  t.ok(m('2001:db8::5'))
  t.notOk(m('10.0.0.1'))
  t.notOk(m('::2'))
  t.notOk(m(''), 'no address (a closed socket) never matches')
  t.throws(() => clientMatcher(['10.0.0.0/33']), /bad prefix length/)
  t.throws(() => clientMatcher(['nope']), /not an IP address or CIDR/)
  t.same(['250', 250, '500ms', '10s', '1.5m', '2h', ' 3 s '].map(parseTime), [250, 250, 500, 10_000, 90_000, 7_200_000, 3000])
  t.same(['', '10 parsecs', '-1', -1, null, '1d'].map(parseTime), [undefined, undefined, undefined, undefined, undefined, undefined])
})

t.test('direction upstream: client → server is dropped, server → client flows', async t => {
  const { reg, proxy, servers, received, dropped } = await setup(t)
  const a = await connect(t, proxy.port)
  t.equal(await echoes(a, 'x'), 'x')
  reg.partitions.cut({ name: 'up', proxies: ['db'], direction: 'upstream' })
  a.write('drop')
  await until(() => dropped() === 4)
  t.equal(received(), 'x', 'the server got nothing')
  const got = readBytes(a, 5)
  servers[0]!.write('hello')
  t.equal((await within(got, 5000, 'server push')).toString(), 'hello', 'the server still reaches the client')
  reg.partitions.heal('up')
  t.equal(await echoes(a, 'y'), 'y')
  await endAll(t, proxy, a)
})

t.test('duration: heals itself (and leaves the list) when it runs out; no timer left', async t => {
  const clock = new ManualClock()
  const { reg, proxy } = await setup(t, { clock })
  const a = await connect(t, proxy.port)
  t.equal(await echoes(a, 'x'), 'x')
  const p = reg.partitions.cut({ name: 'blip', proxies: ['db'], duration: '1s' })
  t.match(p.toJSON(), { duration: 1000, remaining_ms: 1000, state: 'cut' })
  clock.advance(999)
  t.ok(reg.partitions.has('blip'), 'still cut at 999 ms')
  t.match(p.toJSON(), { remaining_ms: 1 })
  clock.advance(1)
  t.notOk(reg.partitions.has('blip'), 'healed at 1 s')
  t.same(proxy.cuts, [])
  t.equal(clock.pending, 0, 'no timer left')
  t.equal(await echoes(a, 'y'), 'y', 'the link flows')
  await endAll(t, proxy, a)
})

t.test('flap: cut for `down`, healed for `up`, over and over until healed; heal cancels the timer', async t => {
  const clock = new ManualClock()
  const { reg, proxy } = await setup(t, { clock })
  const p = reg.partitions.cut({ name: 'flap', proxies: ['db'], mode: 'refuse', flap: { up: 100, down: '200ms' } })
  t.match(p.toJSON(), { state: 'cut', next_flip_ms: 200 })
  t.equal(await attempt(t, proxy.port), 'refused', 't=0: cut')
  clock.advance(199)
  t.equal(p.isCut, true, 't=199: still cut')
  clock.advance(1)
  t.match(p.toJSON(), { state: 'healed', next_flip_ms: 100 })
  t.equal(await attempt(t, proxy.port), 'echo', 't=200: healed')
  clock.advance(100)
  t.equal(p.isCut, true, 't=300: cut again')
  t.equal(await attempt(t, proxy.port), 'refused')
  clock.advance(200)
  t.equal(p.isCut, false, 't=500: healed again')
  clock.advance(100)
  t.equal(p.isCut, true, 't=600: cut again')
  reg.partitions.heal('flap')
  t.equal(clock.pending, 0, 'healing cancelled the flap timer')
  t.same(proxy.cuts, [])
  t.equal(await attempt(t, proxy.port), 'echo')
  await until(() => proxy.connections === 0)
})

t.test('healing a blackhole leaves a link held by hang_connect hanging (only removing the hang ends it)', async t => {
  const { reg, proxy } = await setup(t)
  proxy.addFault(reg.makeFault({ name: 'hang', type: 'hang_connect' }))
  const a = await connect(t, proxy.port)
  await until(() => proxy.connections === 1)
  reg.partitions.cut({ name: 'cut', proxies: ['db'] })
  reg.partitions.heal('cut')
  t.equal(proxy.connections, 1, 'still hanging after the heal')
  const closed = once(a, 'close')
  proxy.removeFault('hang')
  await within(closed, 5000, 'removing the hang closes it')
  await until(() => proxy.connections === 0)
})

t.test('a partition outlives its proxy: a proxy re-created under the same name is cut too', async t => {
  const { reg, proxy, echo } = await setup(t)
  reg.partitions.cut({ name: 'r', proxies: ['db'], mode: 'refuse' })
  await reg.delete('db')
  const again = await reg.create({ name: 'db', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  t.not(again, proxy)
  t.equal(again.cuts.length, 1, 'the new proxy carries the cut')
  t.equal(await attempt(t, again.port), 'refused')
  reg.partitions.heal('r')
  t.equal(await attempt(t, again.port), 'echo')
})

t.test('API: POST/GET/DELETE /partitions and their codes; POST /reset heals', async t => {
  const { registry: reg, call } = await withApi(t)
  const echo = await listen(t, s => s.pipe(s))
  await reg.create({ name: 'db', upstream: `127.0.0.1:${echo.port}` })
  await reg.create({ name: 'api', upstream: `127.0.0.1:${echo.port}` })

  let r = await call('POST', '/partitions', { name: 'p1', proxies: ['db', 'api'], mode: 'reset', clients: ['127.0.0.2'], duration: '10s' })
  t.equal(r.status, 201)
  // remaining_ms is read on the real clock: a millisecond may pass between the cut and the answer
  const { remaining_ms: remaining, ...rest } = r.json as { remaining_ms: number }
  t.same(rest, { name: 'p1', proxies: ['db', 'api'], direction: 'both', mode: 'reset', clients: ['127.0.0.2'], duration: 10_000, state: 'cut' })
  t.ok(remaining <= 10_000 && remaining >= 9_000, `remaining_ms ${remaining} counts down from 10 s`)
  t.equal(reg.get('db').cuts.length, 1)
  t.equal(reg.get('api').cuts.length, 1)

  r = await call('POST', '/partitions', { name: 'p1', proxies: ['db'] })
  t.match({ status: r.status, code: r.json.code }, { status: 409, code: 'COQUIN_ERR_PARTITION_EXISTS' })
  r = await call('POST', '/partitions', { name: 'p2', proxies: ['db', 'nope'] })
  t.match({ status: r.status, code: r.json.code, error: r.json.error }, { status: 404, code: 'COQUIN_ERR_PROXY_NOT_FOUND', error: 'proxy not found: nope' })
  t.notOk(reg.partitions.has('p2'), 'nothing cut on a 404')
  for (const [body, why] of [
    [{ name: 'p3', proxies: ['db'], mode: 'drop' }, /mode/],
    [{ name: 'p3', proxies: ['db'], clients: ['10.0.0.0/40'] }, /clients\[0\]: 10\.0\.0\.0\/40 has a bad prefix length/],
    [{ name: 'p3', proxies: ['db'], flap: { up: 100, down: 0 } }, /flap\.down: must be more than 0/],
    [{ name: 'p3', proxies: ['db'], duration: '10 parsecs' }, /duration: must be a time/],
    [{ name: 'p3', proxies: [] }, /proxies/],
    [{ name: 'p3' }, /proxies/],
    [{ name: 'p3', proxies: ['db'], extra: 1 }, /extra: unknown field/],
    [[], /must be an object/],
  ] as const) {
    r = await call('POST', '/partitions', body)
    t.equal(r.status, 400, JSON.stringify(body))
    t.equal(r.json.code, 'COQUIN_ERR_BAD_REQUEST')
    t.match(r.json.error, why)
  }
  r = await call('POST', '/partitions', 'not json')
  t.equal(r.status, 400)

  await call('POST', '/partitions', { name: 'p0', proxies: ['api'], flap: { up: '1s', down: '2s' } })
  r = await call('GET', '/partitions')
  t.equal(r.status, 200)
  t.match(r.json, [{ name: 'p1', state: 'cut' }, { name: 'p0', flap: { up: 1000, down: 2000 }, next_flip_ms: Number }])
  t.match((await call('GET', '/partitions/p0')).json, { name: 'p0' })
  t.equal((await call('GET', '/partitions/none')).status, 404)
  t.equal((await call('PUT', '/partitions')).status, 405)

  r = await call('DELETE', '/partitions/p1')
  t.equal(r.status, 204)
  t.equal(reg.get('db').cuts.length, 0)
  r = await call('DELETE', '/partitions/p1')
  t.match({ status: r.status, code: r.json.code }, { status: 404, code: 'COQUIN_ERR_PARTITION_NOT_FOUND' })

  t.equal((await call('POST', '/reset')).status, 204)
  t.same((await call('GET', '/partitions')).json, [], 'reset healed every partition')
  t.same(reg.get('api').cuts, [])
})

/** Loads `text` from a temp file. */
async function configFile(t: Test, text: string) {
  const file = path.join(t.testdir({ 'c.yaml': text }), 'c.yaml')
  return { file, load: () => loadConfig(file, builtins) }
}

t.test('config: partitions are checked with file:line:col and applied; reapplying touches only what changed', async t => {
  const echo = await listen(t, s => s.pipe(s))
  const proxies = `proxies:
  - { name: db, listen: 127.0.0.1:0, upstream: 127.0.0.1:${echo.port} }
  - { name: api, listen: 127.0.0.1:0, upstream: 127.0.0.1:${echo.port} }
`
  const bad = await configFile(t, `${proxies}partitions:
  - name: cut
    proxies: [db, dbb]
    clients: [10.0.0.0/99]
    duration: 0s
  - name: cut
    proxies: [api]
    mode: drop
    flap: { up: soon, down: 1s }
`)
  const err = await bad.load().then(() => null, (e: Error & { code: string; issues: ConfigIssue[] }) => e)
  t.equal(err?.code, 'COQUIN_ERR_CONFIG_INVALID')
  t.same(err?.issues.map(i => [i.line, i.column, i.path, i.message]), [
    [6, 19, 'partitions[0].proxies[1]', 'no proxy named "dbb" in this config'],
    [7, 15, 'partitions[0].clients[0]', '10.0.0.0/99 has a bad prefix length'],
    [8, 15, 'partitions[0].duration', 'must be more than 0'],
    [9, 11, 'partitions[1].name', 'partition name "cut" given twice (first at line 5)'],
    [11, 11, 'partitions[1].mode', 'must be one of "blackhole", "hold", "reset", "refuse", not string "drop"'],
    [12, 17, 'partitions[1].flap.up', 'must be a time: milliseconds, or a string like 500ms, 10s, 1m, not string "soon"'],
  ])
  t.match(err?.message, new RegExp(`^${bad.file.replaceAll('.', '\\.')}:6:19: partitions\\[0\\]\\.proxies\\[1\\]: no proxy named "dbb"`))

  const reg = await registry(t)
  const good = await configFile(t, `${proxies}partitions:
  - { name: cut, proxies: [db], mode: refuse, duration: 1m }
  - { name: other, proxies: [api, db], clients: [127.0.0.2] }
`)
  const config = await good.load()
  t.same(config.partitions, [
    { name: 'cut', proxies: ['db'], direction: 'both', mode: 'refuse', duration: 60_000 },
    { name: 'other', proxies: ['api', 'db'], direction: 'both', mode: 'blackhole', clients: ['127.0.0.2'] },
  ])
  await applyConfig(reg, config)
  t.same(reg.partitions.list().map(p => p.name), ['cut', 'other'])
  t.equal(reg.get('db').cuts.length, 2)
  t.equal(await attempt(t, reg.get('db').port), 'refused', 'the config partition cuts')
  const other = reg.partitions.get('other')

  const changed = await configFile(t, `${proxies}partitions:
  - { name: cut, proxies: [db], mode: reset, duration: 1m }
  - { name: other, proxies: [api, db], clients: [127.0.0.2] }
`)
  await applyConfig(reg, await changed.load())
  t.equal(reg.partitions.get('other'), other, 'an unchanged partition is left alone')
  t.equal(reg.partitions.get('cut').config.mode, 'reset', 'a changed one is cut anew')

  await applyConfig(reg, await (await configFile(t, proxies)).load())
  t.equal(reg.partitions.size, 0, 'partitions gone from the config are healed')
  t.same(reg.get('db').cuts, [])
})

/** The client commands in this process, output and exit code captured (as test/cli.ts does). */
const cli = runCli

t.test('CLI: partition cut, list, heal', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await listen(t, s => s.pipe(s))
  const reg = server.registry
  await reg.create({ name: 'db', upstream: `127.0.0.1:${echo.port}` })
  await reg.create({ name: 'api', upstream: `127.0.0.1:${echo.port}` })
  const env = { COQUIN_URL: server.url }

  let r = await cli(['partition', 'cut', 'db-cut', '-p', 'db', '-p', 'api', '--mode', 'reset', '--client', '127.0.0.2,10.0.0.0/8', '--duration', '10s'], env)
  t.same(r, { code: 0, stdout: 'cut partition db-cut: db, api (reset, clients 127.0.0.2 10.0.0.0/8, heals in 10.0s)\n', stderr: '' })
  t.match(reg.partitions.get('db-cut').config, { proxies: ['db', 'api'], mode: 'reset', clients: ['127.0.0.2', '10.0.0.0/8'], duration: 10_000 })

  r = await cli(['partition', 'cut', 'flappy', '-p', 'db', '--direction', 'upstream', '--flap', '2s:500'], env)
  t.same(r, { code: 0, stdout: 'cut partition flappy: db (blackhole, upstream, flapping up 2.0s / down 500ms)\n', stderr: '' })

  r = await cli(['partition', 'list'], env)
  t.equal(r.code, 0)
  const lines = r.stdout.trimEnd().split('\n')
  t.match(lines[0], /^NAME +PROXIES +MODE +DIRECTION +CLIENTS +STATE +HEALS IN$/)
  t.match(lines[1], /^db-cut +db,api +reset +both +127\.0\.0\.2,10\.0\.0\.0\/8 +cut +\d+\.\ds$/)
  t.match(lines[2], /^flappy +db +blackhole +upstream +all +cut +-$/)
  r = await cli(['partition', 'ls', '--json'], env)
  t.match(JSON.parse(r.stdout), [{ name: 'db-cut' }, { name: 'flappy' }])

  r = await cli(['partition', 'cut', 'db-cut', '-p', 'db'], env)
  t.same(r, { code: 1, stdout: '', stderr: 'coquin: partition already exists: db-cut\n' })
  r = await cli(['partition', 'cut', 'x', '-p', 'db', '--flap', '2s'], env)
  t.same(r, { code: 1, stdout: '', stderr: 'coquin: --flap must be UP:DOWN, e.g. 2s:1s: 2s\n' })
  r = await cli(['partition', 'cut', 'x', '-p', 'db', '--mode', 'drop'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, /--mode.*drop.*invalid|Allowed choices/i)

  r = await cli(['partition', 'heal', 'db-cut'], env)
  t.same(r, { code: 0, stdout: 'healed partition db-cut\n', stderr: '' })
  r = await cli(['partition', 'heal', 'db-cut'], env)
  t.same(r, { code: 1, stdout: '', stderr: 'coquin: partition not found: db-cut\n' })
  await cli(['partition', 'heal', 'flappy'], env)
  r = await cli(['partition', 'list'], env)
  t.same(r, { code: 0, stdout: 'no partitions: cut one with `coquin partition cut NAME -p PROXY`\n', stderr: '' })
})

t.test('typed client: partition() and its handle, withPartition(), partitions()', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await listen(t, s => s.pipe(s))
  const db = await server.registry.create({ name: 'db', upstream: `127.0.0.1:${echo.port}` })
  const coquin = new Coquin(server.url)

  const p = await coquin.partition({ name: 'p', proxies: ['db'], mode: 'refuse', duration: '1m' })
  t.match(p.info, { name: 'p', mode: 'refuse', duration: 60_000, state: 'cut' })
  t.match(await coquin.partitions(), [{ name: 'p' }])
  t.equal(await attempt(t, db.port), 'refused')
  t.match(await p.refresh(), { remaining_ms: Number })
  await p.heal()
  await p.heal()
  t.pass('healing twice is fine')
  t.equal(await attempt(t, db.port), 'echo')
  await t.rejects(p.refresh(), { status: 404, code: 'COQUIN_ERR_PARTITION_NOT_FOUND' })
  await t.rejects(coquin.partition({ name: 'x', proxies: ['nope'] }), CoquinApiError)

  const inside = await coquin.withPartition({ name: 'w', proxies: ['db'], mode: 'refuse' }, async w => {
    t.equal(w.name, 'w')
    return attempt(t, db.port)
  })
  t.equal(inside, 'refused', 'cut inside')
  t.equal(server.registry.partitions.size, 0, 'healed after')
  await t.rejects(coquin.withPartition({ name: 'w', proxies: ['db'] }, () => { throw new Error('boom') }), { message: 'boom' })
  t.equal(server.registry.partitions.size, 0, 'healed after a throw too')
  await coquin.withPartition({ name: 'r', proxies: ['db'] }, () => coquin.reset())
  t.pass('a partition healed inside (by a reset) is fine')
  await until(() => db.connections === 0)
})
