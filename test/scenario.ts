// Scenarios (src/control/scenario.ts): timelines run in order on a manual clock, repeat, undo on stop and on a
// failed step, file:line:col validation, the API, the typed client and the CLI (short real times).
import t, { type Test } from 'tap'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { listen, registry, until } from './helpers/net.js'
import { withApi } from './helpers/api.js'
import { ManualClock } from '../src/core/clock.js'
import { loadScenario, parseScenario, type ScenarioRun } from '../src/control/scenario.js'
import { startCoquin } from '../src/server.js'
import { Coquin, CoquinApiError, CoquinScenarioError } from '../src/client/index.js'
import { builtins } from '../behaviors/index.js'
import type { Registry } from '../src/control/registry.js'
import { runCli } from './helpers/cli.js'

/** A registry on a manual clock (unless given another) with proxies api and db in front of an echo server. */
async function setup(t: Test, clock: ManualClock | undefined = new ManualClock()) {
  const echo = await listen(t, s => s.pipe(s))
  const reg = await registry(t, clock ? { clock } : {})
  const api = await reg.create({ name: 'api', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  const db = await reg.create({ name: 'db', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  return { reg, api, db, clock: clock!, echo }
}

const run = (reg: Registry, text: string, file = 'test.yaml') => reg.scenarios.start(parseScenario(file, text, builtins))
/** Lets a run whose timer just fired do its step(s): they run on promise continuations. */
const steps = (r: ScenarioRun, n: number) => until(() => r.log.length >= n, 5000, `${n} steps`)
const settle = () => new Promise(r => setImmediate(r))

t.test('steps run in time order, each at its time; the run ends at its duration', async t => {
  const { reg, api, clock } = await setup(t)
  const r = run(reg, `
name: three
steps:
  - at: 250ms
    proxy: { name: api, enabled: false }
  - at: 0
    toxic: { proxy: api, add: { name: slow, type: latency, attributes: { latency: 100 } } }
  - at: 0.1s
    partition: { cut: { name: db-cut, proxies: [db] } }
`)
  t.match(r.toJSON(), { id: '1', name: 'three', state: 'running', steps: 3, repeat: 1, duration_ms: 250, remaining_ms: 250, log: [] })
  await steps(r, 1)
  t.match(api.fault('slow'), { type: 'latency', attributes: { latency: 100 } }, 'step 1 at 0 ms')
  t.notOk(reg.partitions.has('db-cut'))
  t.match(r.toJSON(), { next: { pass: 1, step: 2, at_ms: 100, does: 'cut partition db-cut: db (blackhole, both)' } })
  clock.advance(99)
  await settle()
  t.equal(r.log.length, 1, 'nothing more at 99 ms')
  clock.advance(1)
  await steps(r, 2)
  t.ok(reg.partitions.has('db-cut'), 'step 2 at 100 ms')
  t.equal(api.enabled, true)
  t.match(r.toJSON(), { elapsed_ms: 100, remaining_ms: 150 })
  clock.advance(150)
  await until(() => r.state !== 'running')
  t.equal(api.enabled, false, 'step 3 at 250 ms')
  t.equal(r.state, 'done')
  t.same(r.log, [
    { pass: 1, step: 1, at_ms: 0, did: 'add toxic slow (latency latency=100 jitter=0 distribution=uniform) to api' },
    { pass: 1, step: 2, at_ms: 100, did: 'cut partition db-cut: db (blackhole, both)' },
    { pass: 1, step: 3, at_ms: 250, did: 'disable proxy api' },
  ])
  t.ok(reg.partitions.has('db-cut'), 'a run that ends leaves its last state in place')
  t.equal(clock.pending, 0, 'no timer left')
})

t.test('stop undoes what the run applied: faults added, updated and removed, partitions, enabled', async t => {
  const { reg, api, db, clock } = await setup(t)
  api.addFault(reg.makeFault({ name: 'keep', type: 'latency', attributes: { latency: 10 } }))
  api.addFault(reg.makeFault({ name: 'gone', type: 'noop', stream: 'upstream', toxicity: 0.5 }))
  reg.partitions.cut({ name: 'theirs', proxies: ['api'], mode: 'refuse' })
  const before = JSON.stringify(api.toxicsJSON())
  const r = run(reg, `
steps:
  - at: 0
    toxic: { proxy: api, add: { name: new, type: noop } }
  - at: 0
    toxic: { proxy: api, update: { name: keep, attributes: { latency: 500 }, toxicity: 0.5 } }
  - at: 0
    toxic: { proxy: api, remove: gone }
  - at: 0
    partition: { cut: { name: db-cut, proxies: [db], mode: reset } }
  - at: 0
    partition: { heal: theirs }
  - at: 0
    proxy: { name: db, enabled: false }
  - at: 10s
    toxic: { proxy: api, add: { name: never, type: noop } }
`)
  await steps(r, 6)
  t.same(api.faults.map(f => f.name), ['keep', 'new'])
  t.match(api.fault('keep'), { toxicity: 0.5, attributes: { latency: 500 } })
  t.same(reg.partitions.list().map(p => p.name), ['db-cut'])
  t.equal(db.listening, false)

  await r.stop()
  t.equal(r.state, 'stopped')
  t.equal(JSON.stringify(api.toxicsJSON()), before, 'the faults are back as they were, in order')
  t.same(reg.partitions.list().map(p => p.name), ['theirs'], 'its partition healed, the one it healed cut again')
  t.equal(db.enabled, true)
  t.equal(db.listening, true, 'the proxy it disabled listens again')
  t.same(r.undone, [
    'restored toxic gone on api', 'restored toxic keep on api', 'removed toxic new from api',
    'cut partition theirs again', 'healed partition db-cut', 'enabled proxy db',
  ])
  t.notOk(api.faults.some(f => f.name === 'never'), 'later steps never run')
  t.equal(clock.pending, 0, 'no timer left')
  await r.stop()
  t.equal(r.state, 'stopped', 'stopping again is a no-op')
})

t.test('repeat: passes run back to back, each `duration` long', async t => {
  const { reg, api, clock } = await setup(t)
  const r = run(reg, `
repeat: 3
duration: 100ms
steps:
  - { at: 0, toxic: { proxy: api, add: { name: t, type: noop } } }
  - { at: 50, toxic: { proxy: api, remove: t } }
`)
  await steps(r, 1)
  t.match(r.toJSON(), { duration_ms: 300, pass_ms: 100, repeat: 3, next: { pass: 1, step: 2, at_ms: 50 } })
  for (let i = 2; i <= 6; i++) {
    clock.advance(50)
    await steps(r, i)
    t.equal(api.faults.length, i % 2, `after step ${i}`)
  }
  t.match(r.toJSON(), { state: 'running', remaining_ms: 50 })
  clock.advance(50)
  await until(() => r.state === 'done')
  t.same(r.log.map(l => [l.pass, l.step, l.at_ms]), [[1, 1, 0], [1, 2, 50], [2, 1, 100], [2, 2, 150], [3, 1, 200], [3, 2, 250]])
})

t.test('a failed step ends the run as failed and undoes what it applied', async t => {
  const { reg, api } = await setup(t)
  const r = run(reg, `
steps:
  - { at: 0, toxic: { proxy: api, add: { name: a, type: noop } } }
  - { at: 0, toxic: { proxy: api, remove: nope } }
`)
  await r.finished
  t.equal(r.state, 'failed')
  t.equal(r.error, 'step 2 (remove toxic nope from api): toxic not found')
  t.match(r.log, [{ step: 1 }, { step: 2, error: 'toxic not found' }])
  t.same(api.faults, [], 'step 1 undone')
  t.same(r.undone, ['removed toxic a from api'])
})

t.test('POST /reset stops running scenarios without undoing', async t => {
  const { reg } = await setup(t)
  const r = run(reg, `
steps:
  - { at: 0, toxic: { proxy: api, add: { name: a, type: noop } } }
  - { at: 1s, toxic: { proxy: api, remove: a } }
`)
  await steps(r, 1)
  await reg.reset()
  t.equal(r.state, 'stopped')
  t.same(r.undone, [])
})

t.test('validation: every issue at once, each naming file:line:col and the field', async t => {
  const text = `name: bad
repeat: 0
steps:
  - at: soon
    toxic: { proxy: api, add: { type: latncy } }
  - at: 1s
    toxic: { proxy: api, remove: x }
    proxy: { name: api, enabled: false }
  - at: 2s
    partition: { cut: { name: p, proxies: [db], clients: [bad] } }
  - at: 3s
    toxic: { proxy: api, update: { name: x } }
    wat: 1
  - at: 3s
duration: 1s
`
  const err = (() => { try { parseScenario('bad.yaml', text, builtins) } catch (e) { return e as Error & { code: string; issues: unknown[] } } })()
  t.equal(err?.code, 'COQUIN_ERR_SCENARIO_INVALID')
  t.same(err?.message.split('\n'), [
    'bad.yaml:2:9: repeat: must be >= 1',
    'bad.yaml:4:9: steps[0].at: must be a time: milliseconds, or a string like 500ms, 10s, 1m, not string "soon"',
    `bad.yaml:5:39: steps[0].toxic.add.type: unknown toxic type "latncy" (known: ${builtins.map(b => b.type).join(', ')})`,
    'bad.yaml:6:5: steps[1]: give only one of toxic, proxy',
    'bad.yaml:10:59: steps[2].partition.cut.clients[0]: bad is not an IP address or CIDR',
    'bad.yaml:12:34: steps[3].toxic.update: nothing to change: give attributes and/or toxicity',
    'bad.yaml:13:5: steps[3].wat: unknown field',
    'bad.yaml:14:5: steps[4]: give one of toxic, partition, proxy',
    'bad.yaml:15:11: duration: shorter than the last step (at 3s): steps after it would never run',
  ])
  t.throws(() => parseScenario('s.yaml', 'steps: [\n', builtins), { code: 'COQUIN_ERR_SCENARIO_INVALID', message: /^s\.yaml:2:1: / })
  t.throws(() => parseScenario('s.yaml', 'steps: []\n', builtins), { message: 's.yaml:1:8: steps: must NOT have fewer than 1 items' })
})

t.test('after: a step runs a delay after another (by position or name), also in later passes', async t => {
  const { reg, api, db, clock } = await setup(t)
  const r = run(reg, `
repeat: 2
duration: 1s
steps:
  - after: { step: cut, delay: 300ms }
    partition: { heal: db-cut }
  - at: 100ms
    name: cut
    partition: { cut: { name: db-cut, proxies: [db] } }
  - after: { step: 1 }
    toxic: { proxy: api, add: { name: t, type: noop } }
  - after: { step: 3, delay: 0.2s }
    toxic: { proxy: api, remove: t }
`)
  t.same(r.scenario.steps.map(s => s.at), [100, 400, 400, 600], 'times resolved: 100 + 300, + 0, + 200')
  t.same(r.scenario.steps[1]!.after, { step: 'cut', delay: 300 })
  t.equal(r.scenario.steps[0]!.name, 'cut')
  clock.advance(99)
  await settle()
  t.equal(r.log.length, 0)
  clock.advance(1)
  await steps(r, 1)
  t.ok(reg.partitions.has('db-cut'))
  clock.advance(300)
  await steps(r, 3)
  t.notOk(reg.partitions.has('db-cut'), 'healed 300 ms after the cut')
  t.ok(api.faults.some(f => f.name === 't'), 'the step after it, with no delay, right after it (though earlier in the file)')
  t.same(r.log.slice(1).map(l => l.did), ['heal partition db-cut', 'add toxic t (noop) to api'])
  clock.advance(200)
  await steps(r, 4)
  t.notOk(api.faults.some(f => f.name === 't'))
  clock.advance(500)
  await steps(r, 5)
  t.same(r.log.at(-1), { pass: 2, step: 1, at_ms: 1100, did: 'cut partition db-cut: db (blackhole, both)' })
  clock.advance(300)
  await steps(r, 7)
  t.same(r.log.slice(5).map(l => l.at_ms), [1400, 1400])
  clock.advance(1000)
  await until(() => r.state !== 'running')
  t.equal(r.state, 'done')
  t.equal(db.enabled, true)
  t.equal(clock.pending, 0)
  // duration defaults to the last resolved time
  t.equal(parseScenario('d.yaml', 'steps:\n  - { at: 1s, name: a, proxy: { name: api, enabled: false } }\n  - { after: { step: a, delay: 2s }, proxy: { name: api, enabled: true } }\n', builtins).duration, 3000)
})

t.test('after: validation of references, cycles and at/after, each at file:line:col', async t => {
  const text = `steps:
  - at: 1s
    after: { step: 2 }
    proxy: { name: api, enabled: false }
  - proxy: { name: api, enabled: true }
  - after: { step: 9 }
    proxy: { name: api, enabled: true }
  - after: { step: nope, delay: soon }
    proxy: { name: api, enabled: true }
  - after: { step: 6 }
    name: x
    proxy: { name: api, enabled: true }
  - after: { step: x }
    name: x
    proxy: { name: api, enabled: true }
  - after: { step: 5, delay: 1s, wat: 1 }   # into the cycle: no time, but no issue of its own
    proxy: { name: api, enabled: true }
  - after: { step: 0 }
    proxy: { name: api, enabled: true }
duration: 1s
`
  const err = (() => { try { parseScenario('after.yaml', text, builtins) } catch (e) { return e as Error & { code: string } } })()
  t.equal(err?.code, 'COQUIN_ERR_SCENARIO_INVALID')
  t.same(err?.message.split('\n'), [
    'after.yaml:2:5: steps[0]: give only one of at, after',
    'after.yaml:5:5: steps[1]: give one of at, after',
    'after.yaml:6:20: steps[2].after.step: no step 9: there are 8',
    'after.yaml:8:20: steps[3].after.step: no step is named nope',
    'after.yaml:8:33: steps[3].after.delay: must be a time: milliseconds, or a string like 500ms, 10s, 1m, not string "soon"',
    'after.yaml:10:20: steps[4].after.step: a cycle: steps[4] runs after steps[5] runs after steps[4]',
    'after.yaml:13:20: steps[5].after.step: a cycle: steps[5] runs after steps[4] runs after steps[5]',
    'after.yaml:14:11: steps[5].name: x is also the name of steps[4]',
    'after.yaml:16:34: steps[6].after.wat: unknown field',
    'after.yaml:18:20: steps[7].after.step: must be >= 1',
  ])
  t.throws(() => parseScenario('s.yaml', 'steps:\n  - { after: { step: 1 }, proxy: { name: api, enabled: false } }\n', builtins),
    { message: 's.yaml:2:22: steps[0].after.step: a step cannot run after itself' })
  t.throws(() => parseScenario('s.yaml', 'duration: 1s\nsteps:\n  - { at: 800ms, proxy: { name: api, enabled: false } }\n  - { after: { step: 1, delay: 500 }, proxy: { name: api, enabled: true } }\n', builtins),
    { message: 's.yaml:1:11: duration: shorter than the last step (at 1.3s): steps after it would never run' })
})

t.test('configs/scenarios/lb-flap.yaml loads, and runs to its end leaving the proxy as it found it', async t => {
  const file = fileURLToPath(new URL('../configs/scenarios/lb-flap.yaml', import.meta.url))
  const s = await loadScenario(file, builtins)
  t.match(s, { name: 'lb-flap', repeat: 2, duration: 20_000 })
  t.same(s.steps.map(x => x.at), [0, 5000, 12_000, 12_000, 18_000])

  const clock = new ManualClock()
  const echo = await listen(t, c => c.pipe(c))
  const reg = await registry(t, { clock })
  const web = await reg.create({ name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  const r = reg.scenarios.start(s)
  const seen: string[] = []
  for (let ms = 0; ms <= 40_000; ms += 1000) {
    if (ms > 0) clock.advance(1000)
    await settle()
    seen.push(`${ms / 1000}:${web.faults.map(f => `${f.name}=${String(f.attributes.latency)}`).join(',')}|${reg.partitions.has('lb-flap') ? (reg.partitions.get('lb-flap').isCut ? 'cut' : 'up') : '-'}`)
  }
  await until(() => r.state === 'done')
  t.same(seen.slice(0, 21), [
    '0:lb-slow=200|-', '1:lb-slow=200|-', '2:lb-slow=200|-', '3:lb-slow=200|-', '4:lb-slow=200|-',
    '5:lb-slow=200|cut', '6:lb-slow=200|up', '7:lb-slow=200|cut', '8:lb-slow=200|up', '9:lb-slow=200|cut', '10:lb-slow=200|up',
    '11:lb-slow=200|cut', '12:lb-slow=50|-', '13:lb-slow=50|-', '14:lb-slow=50|-', '15:lb-slow=50|-', '16:lb-slow=50|-', '17:lb-slow=50|-',
    '18:|-', '19:|-', '20:lb-slow=200|-',
  ])
  t.equal(seen.at(-1), '40:|-')
  t.equal(r.log.length, 10)
  t.same(web.faults, [])
  t.equal(reg.partitions.size, 0)
})

t.test('API: POST/GET/DELETE /scenarios and their codes', async t => {
  const clock = new ManualClock()
  const { registry: reg, call } = await withApi(t, {}, { clock })
  const echo = await listen(t, s => s.pipe(s))
  const api = await reg.create({ name: 'api', upstream: `127.0.0.1:${echo.port}` })

  let r = await call('POST', '/scenarios', {
    name: 'json', steps: [{ at: 0, toxic: { proxy: 'api', add: { name: 'slow', type: 'latency' } } }, { at: '1m', toxic: { proxy: 'api', remove: 'slow' } }],
  })
  t.equal(r.status, 201)
  t.match(r.json, { id: '1', name: 'json', state: 'running', steps: 2, duration_ms: 60_000 })
  t.equal(r.headers.get('location'), '/scenarios/1')
  await until(() => api.faults.length === 1)
  r = await call('GET', '/scenarios')
  t.match(r.json, [{ id: '1', state: 'running', log: [{ step: 1, did: /^add toxic slow/ }], next: { step: 2, at_ms: 60_000 } }])
  t.match((await call('GET', '/scenarios/1')).json, { id: '1' })

  t.equal((await call('DELETE', '/scenarios/1')).status, 204)
  t.same(api.faults, [], 'stopping undid the fault it added')
  t.match((await call('GET', '/scenarios/1')).json, { state: 'stopped', undone: ['removed toxic slow from api'] })
  t.equal((await call('DELETE', '/scenarios/1')).status, 204, 'stopping a finished one is a no-op')

  r = await call('POST', '/scenarios', { yaml: 'steps:\n  - at: 0\n    toxic: { proxy: api, remove: [x] }\n', file: 'mine.yaml' })
  t.equal(r.status, 400)
  t.equal(r.json.code, 'COQUIN_ERR_SCENARIO_INVALID')
  t.equal(r.json.error, 'mine.yaml:3:34: steps[0].toxic.remove: must be string, not a list')
  r = await call('POST', '/scenarios', { steps: [{ at: -1, proxy: { name: 'api' } }] })
  t.equal(r.status, 400)
  t.equal(r.json.error, 'body: steps[0].at: must be >= 0\nbody: steps[0].proxy.enabled: missing required field')
  r = await call('POST', '/scenarios', { yaml: 3 })
  t.match({ status: r.status, error: r.json.error }, { status: 400, error: /yaml must be a string/ })
  r = await call('POST', '/scenarios', { yaml: 'steps: [{ at: 0, proxy: { name: nope, enabled: false } }]' })
  t.equal(r.status, 201, 'a proxy that does not exist fails the step, not the request')
  await until(() => reg.scenarios.get(r.json.id).state !== 'running')
  t.match((await call('GET', `/scenarios/${r.json.id}`)).json, { state: 'failed', error: 'step 1 (disable proxy nope): proxy not found' })
  t.match((await call('GET', '/scenarios/99')).json, { status: 404, code: 'COQUIN_ERR_SCENARIO_NOT_FOUND' })
})

t.test('typed client: coquin.scenario() runs to the end; startScenario().stop() undoes; failures reject', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await listen(t, s => s.pipe(s))
  const api = await server.registry.create({ name: 'api', upstream: `127.0.0.1:${echo.port}` })
  const coquin = new Coquin(server.url)

  const info = await coquin.scenario({
    name: 'short',
    steps: [
      { at: 0, toxic: { proxy: 'api', add: { name: 'slow', type: 'latency', attributes: { latency: 10 } } } },
      { at: '40ms', toxic: { proxy: 'api', update: { name: 'slow', attributes: { latency: 20 } } } },
      { at: 80, toxic: { proxy: 'api', remove: 'slow' } },
    ],
  })
  t.match(info, { name: 'short', state: 'done', remaining_ms: 0 })
  t.same(info.log.map(l => l.step), [1, 2, 3])
  t.same(api.faults, [])

  const yaml = 'name: held\nsteps:\n  - { at: 0, partition: { cut: { name: p, proxies: [api] } } }\n  - { at: 10s, partition: { heal: p } }\n'
  const handle = await coquin.startScenario(yaml)
  await until(() => server.registry.partitions.has('p'))
  const stopped = await handle.stop()
  t.match(stopped, { state: 'stopped', undone: ['healed partition p'] })
  t.equal(server.registry.partitions.size, 0)

  const dir = t.testdir({ 'ok.yaml': 'steps:\n  - { at: 0, proxy: { name: api, enabled: true } }\n', 'bad.yaml': 'steps:\n  - at: later\n' })
  t.match(await coquin.scenario(path.join(dir, 'ok.yaml')), { name: 'ok', state: 'done' }, 'a .yaml path is read and sent')
  const bad = await coquin.scenario(path.join(dir, 'bad.yaml')).catch((e: unknown) => e)
  t.ok(bad instanceof CoquinApiError)
  t.match(bad, { status: 400, code: 'COQUIN_ERR_SCENARIO_INVALID', message: `${path.join(dir, 'bad.yaml')}:2:5: steps[0]: give one of toxic, partition, proxy\n${path.join(dir, 'bad.yaml')}:2:9: steps[0].at: must be a time: milliseconds, or a string like 500ms, 10s, 1m, not string "later"` })

  const failed = await coquin.scenario({ steps: [{ at: 0, toxic: { proxy: 'nope', remove: 'x' } }] }).catch((e: unknown) => e)
  t.ok(failed instanceof CoquinScenarioError)
  t.match(failed, { message: 'scenario scenario failed: step 1 (remove toxic x from nope): proxy not found', info: { state: 'failed' } })

  const ac = new AbortController()
  const aborted = coquin.scenario({ steps: [{ at: 0, toxic: { proxy: 'api', add: { type: 'noop' } } }, { at: '1m', proxy: { name: 'api', enabled: true } }] }, { signal: ac.signal })
  await until(() => api.faults.length === 1)
  ac.abort(new Error('enough'))
  await t.rejects(aborted, { message: 'enough' })
  t.same(api.faults, [], 'aborting stopped it, and stopping undid it')
})

const cli = runCli

t.test('CLI: scenario run shows each step; Ctrl-C stops it and undoes; check; list; stop', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await listen(t, s => s.pipe(s))
  const api = await server.registry.create({ name: 'api', upstream: `127.0.0.1:${echo.port}` })
  const env = { COQUIN_URL: server.url }
  const dir = t.testdir({
    'short.yaml': `name: short
steps:
  - { at: 0, toxic: { proxy: api, add: { name: slow, type: latency, attributes: { latency: 5 } } } }
  - { at: 50ms, partition: { cut: { name: p, proxies: [api], mode: refuse } } }
  - { at: 100ms, partition: { heal: p } }
  - { at: 150ms, toxic: { proxy: api, remove: slow } }
`,
    'long.yaml': `name: long
steps:
  - { at: 0, toxic: { proxy: api, add: { name: slow, type: latency } } }
  - { at: 1m, toxic: { proxy: api, remove: slow } }
`,
    'bad.yaml': 'name: bad\nsteps:\n  - { at: 0, toxic: { proxy: api, add: { type: latency, attributes: { latncy: 5 } } } }\n',
  })

  let r = await cli(['scenario', 'run', path.join(dir, 'short.yaml')], env)
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  t.match(r.stdout.split('\n'), [
    'scenario short (id 1): 4 steps, 150ms; Ctrl-C stops it and undoes what it applied',
    '[    0ms] step 1/4: add toxic slow (latency latency=5 jitter=0 distribution=uniform) to api  (150ms left)',
    '[   50ms] step 2/4: cut partition p: api (refuse)  (100ms left)',
    '[  100ms] step 3/4: heal partition p  (50ms left)',
    '[  150ms] step 4/4: remove toxic slow from api  (0ms left)',
    /^scenario short done in (\d+ms|\d\.\ds)$/,
    '',
  ])

  r = await cli(['scenario', 'run', path.join(dir, 'long.yaml')], env, (out, interrupt) => {
    if (out.includes('step 1/2')) setImmediate(interrupt)
  })
  t.equal(r.code, 130, 'interrupted')
  t.match(r.stdout, /\nscenario long stopped \(interrupted\) after (\d+ms|\d+\.\ds); undone: removed toxic slow from api\n$/)
  t.same(api.faults, [], 'Ctrl-C undid the fault')

  r = await cli(['scenario', 'run', path.join(dir, 'bad.yaml')], env)
  t.equal(r.code, 1)
  t.equal(r.stderr, `coquin: ${path.join(dir, 'bad.yaml')}:3:71: steps[0].toxic.add.attributes.latncy: unknown field\n`)
  r = await cli(['scenario', 'run', path.join(dir, 'missing.yaml')], env)
  t.same(r, { code: 1, stdout: '', stderr: `coquin: cannot read scenario ${path.join(dir, 'missing.yaml')}: no such file\n` })

  r = await cli(['scenario', 'check', path.join(dir, 'short.yaml')], {})
  t.same(r, { code: 0, stdout: `${path.join(dir, 'short.yaml')}: ok: scenario short, 4 steps, 150ms\n`, stderr: '' })
  r = await cli(['scenario', 'check', path.join(dir, 'bad.yaml')], {})
  t.equal(r.code, 1)
  t.match(r.stderr, /bad\.yaml:3:71: steps\[0\]\.toxic\.add\.attributes\.latncy: unknown field/)

  const running = await new Coquin(server.url).startScenario({ name: 'bg', steps: [{ at: 0, toxic: { proxy: 'api', add: { type: 'noop' } } }, { at: '1m', proxy: { name: 'api', enabled: true } }] })
  await until(() => api.faults.length === 1)
  r = await cli(['scenario', 'list'], env)
  t.equal(r.code, 0)
  t.match(r.stdout, /^ID +NAME +STATE +STEPS DONE +ELAPSED +LEFT +NEXT\n/)
  t.match(r.stdout, new RegExp(`\\n${running.id} +bg +running +1/2 +(\\d+ms|\\d+\\.\\ds) +\\d+\\.\\ds +1m: enable proxy api\\n`))
  r = await cli(['scenario', 'stop', running.id], env)
  t.same(r, { code: 0, stdout: `stopped scenario ${running.id}; undone: removed toxic noop_downstream from api\n`, stderr: '' })
  t.same(api.faults, [])
})
