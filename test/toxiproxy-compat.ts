// Toxiproxy users' own bytes and command lines, against coquin: what Toxiproxy's Go client and
// toxiproxy-cli send (an empty toxic name), how toxiproxy-server is started (single-dash flags, a JSON
// config, LOG_LEVEL), TOXIPROXY_URL and `-h HOST:PORT`, the bind error's address, metric label order.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { withApi } from './helpers/api.js'
import { runCli } from './helpers/cli.js'
import { echoServer, listen, registry, within } from './helpers/net.js'
import { fromToxiproxyArgs } from '../src/cli/toxiproxy-flags.js'
import { parseConfig } from '../src/control/config.js'
import { createMetrics } from '../src/observe/metrics.js'
import { builtins } from '../behaviors/index.js'
import { Coquin } from '../src/client/index.js'

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))

// What toxiproxy's Go client (client/toxic.go: `Name string json:"name"`, no omitempty) and
// `toxiproxy-cli toxic add -t latency -a latency=100 web` put on the wire when no name is given.
const GO_CLIENT_BODY = '{"name":"","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":100}}'

t.test('an empty toxic name means "no name": <type>_<stream>, in the API, populate, configs and the typed client', async t => {
  const echo = await echoServer(t)
  const api = await withApi(t)
  await api.call('POST', '/proxies', { name: 'web', upstream: `127.0.0.1:${echo.port}` })
  const r = await fetch(`${api.url}/proxies/web/toxics`, { method: 'POST', body: GO_CLIENT_BODY, headers: { 'User-Agent': 'toxiproxy-cli' } })
  t.equal(r.status, 200)
  t.match(await r.json(), { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 100 } })
  const again = await fetch(`${api.url}/proxies/web/toxics`, { method: 'POST', body: GO_CLIENT_BODY })
  t.equal(again.status, 409, 'a second one with the same default name is a conflict, as in Toxiproxy')
  const both = await api.call('POST', '/proxies/web/toxics', { name: '', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } })
  t.match(both.json, { name: 'timeout_upstream' })

  const pop = await api.call('POST', '/populate', [{ name: 'db', upstream: `127.0.0.1:${echo.port}`, toxics: [{ name: '', type: 'latency', attributes: { latency: 1 } }] }])
  t.equal(pop.status, 201, pop.text)
  t.same((await api.call('GET', '/proxies/db/toxics')).json.map((x: { name: string }) => x.name), ['latency_downstream'])

  const config = parseConfig('coquin.yaml', `proxies:\n  - name: a\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:1\n    toxics:\n      - { name: "", type: slicer, stream: upstream }\n`, builtins)
  t.equal(config.proxies[0]!.toxics[0]!.name, 'slicer_upstream')

  const coquin = new Coquin(api.url)
  const web = await coquin.get('web')
  const f = await web.addFault({ name: '', type: 'bandwidth', stream: 'upstream', attributes: { rate: 100 } })
  t.equal(f.name, 'bandwidth_upstream')
})

t.test('a port in use: the error names the resolved address, as Go does', async t => {
  const taken = await listen(t, () => {})
  const reg = await registry(t)
  await t.rejects(reg.create({ name: 'p', listen: `localhost:${taken.port}`, upstream: '127.0.0.1:1' }),
    { code: 'COQUIN_ERR_LISTEN', message: `listen tcp 127.0.0.1:${taken.port}: bind: address already in use` })
})

t.test('toxiproxy_proxy_*_bytes_total print their labels in sorted order, as Toxiproxy does', async t => {
  const echo = await echoServer(t)
  let reg: Awaited<ReturnType<typeof registry>> | undefined
  const m = createMetrics({ coquin: () => reg?.proxies.values() ?? [] })
  reg = await registry(t, { observer: m.observer })
  const p = await reg.create({ name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  const c = net.connect(p.port, '127.0.0.1')
  t.teardown(() => c.destroy())
  await once(c, 'connect')
  c.write('hello')
  await once(c, 'data')
  const text = (await m.text()).body
  const lines = text.split('\n').filter(l => l.startsWith('toxiproxy_proxy_'))
  t.ok(lines.length >= 4, lines.join('\n'))
  for (const l of lines) {
    const names = [...l.matchAll(/([a-z_]+)="/g)].map(x => x[1])
    t.same(names, ['direction', 'listener', 'proxy', 'upstream'], l)
  }
})

t.test("toxiproxy-server's command line, as argv: single-dash flags, = or a space, bools ignored, LOG_LEVEL", async t => {
  const commands = ['serve', 'proxy', 'list', 'toxic', 'cert']
  const f = (args: string[], env: Record<string, string> = {}) => fromToxiproxyArgs(args, env, commands)
  t.same(f(['-host=0.0.0.0', '-config=/tmp/tc-toxiproxy.json']), ['serve', '--host', '0.0.0.0', '--config', '/tmp/tc-toxiproxy.json'])
  t.same(f(['-host', '0.0.0.0', '-port', '8475', '-seed=42', '-proxy-metrics', '-runtime-metrics=true']), ['serve', '--host', '0.0.0.0', '--port', '8475', '--seed', '42'])
  t.same(f(['serve', '-config', 'x.json', '--watch']), ['serve', '--config', 'x.json', '--watch'])
  t.same(f(['-host=0.0.0.0'], { LOG_LEVEL: 'warning' }), ['serve', '--host', '0.0.0.0', '--log-level', 'warn'])
  t.same(f(['serve', '-c', 'a.yaml'], { LOG_LEVEL: 'debug' }), ['serve', '-c', 'a.yaml', '--log-level', 'debug'])
  t.same(f(['serve', '--log-level', 'info'], { LOG_LEVEL: 'debug' }), ['serve', '--log-level', 'info'], '--log-level wins')
  t.throws(() => f(['-host=x'], { LOG_LEVEL: 'loud' }), /LOG_LEVEL must be one of/)
  t.throws(() => f(['-port']), /flag needs an argument: -port/)
  t.same(f(['-h', '127.0.0.1:8474', 'list']), ['--control', 'http://127.0.0.1:8474', 'list'], "toxiproxy-cli's -h HOST:PORT")
  t.same(f(['-h']), ['-h'], 'help stays help')
  t.same(f(['list', '--json']), ['list', '--json'], "coquin's own command lines are untouched")
  t.same(f(['serve', '--host', '127.0.0.1', '-c', 'x.yaml']), ['serve', '--host', '127.0.0.1', '-c', 'x.yaml'])
  t.same(f([]), [])
})

t.test('the built CLI, started as toxiproxy-server is (flags, a Toxiproxy JSON config), driven through TOXIPROXY_URL and -h', { skip: !existsSync(CLI) && 'build first' }, async t => {
  const echo = await echoServer(t)
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-tp-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = path.join(dir, 'toxiproxy.json')
  writeFileSync(config, JSON.stringify([{ name: 'redis', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, enabled: true }]))
  const child = spawn(process.execPath, [CLI, '-host=127.0.0.1', '-port', '0', `-config=${config}`, '-proxy-metrics', '-runtime-metrics'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', d => { out += d })
  let err = ''
  child.stderr.on('data', d => { err += d })
  const url = await within(new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => { const m = /control API on (\S+),/.exec(out); if (m) resolve(m[1]!) })
    child.on('exit', code => reject(new Error(`exited ${code}: ${err}`)))
  }), 15_000, 'the control API line')
  t.equal(err, '', 'LOG_LEVEL=warn: no info lines')
  const viaEnv = await runCli(['list', '--json'], { TOXIPROXY_URL: url })
  t.equal(viaEnv.code, 0, viaEnv.stderr)
  t.match(JSON.stringify(JSON.parse(viaEnv.stdout)), /"name":"redis"/)
  const viaH = await runCli(fromToxiproxyArgs(['-h', new URL(url).host, 'list', '--json'], {}, ['list']), {})
  t.equal(viaH.code, 0, viaH.stderr)
  t.match(JSON.stringify(JSON.parse(viaH.stdout)), /"name":"redis"/)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, 'SIGTERM: exit 0')
})
