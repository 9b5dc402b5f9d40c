// The client commands of the CLI against an embedded server in this process, whose registry is
// checked directly. The main path runs as a user runs it (`node dist/src/cli/main.js ...`, built by
// `npm test`); the edge cases run the same commands in-process, which costs no Node start-up each.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startCoquin } from '../src/server.js'
import { parseValue } from '../src/cli/commands.js'
import { formatTable } from '../src/cli/table.js'
import { echoServer } from './helpers/net.js'
import { runCli } from './helpers/cli.js'

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))

interface Run { code: number | null; signal: string | null; stdout: string; stderr: string }

/** Runs the built CLI with a clean environment (no tap loaders, no COQUIN_* from the shell) plus env. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
    k !== 'NODE_OPTIONS' && !k.startsWith('COQUIN_') && !k.startsWith('TAP') && !k.startsWith('_TAPJS')))
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...base, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string | null }) | null
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr })
    })
  })
}

/** The same commands in this process: a fresh program each time, output and exit code captured. */
async function inProcess(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return { ...(await runCli(args, env)), signal: null }
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address() as net.AddressInfo
  await new Promise(r => s.close(r))
  return port
}

type T = Test
const expectOk = (t: T, r: Run, what: string) => {
  t.equal(r.code, 0, `${what}: exit 0${r.signal ? ` (killed: ${r.signal})` : ''}${r.stderr ? ` (stderr: ${r.stderr.trim()})` : ''}`)
  t.equal(r.stderr, '', `${what}: nothing on stderr`)
}
const expectFail = (t: T, r: Run, what: string, stderr: string | RegExp) => {
  t.equal(r.code, 1, `${what}: exit 1`)
  if (typeof stderr === 'string') t.equal(r.stderr, stderr, `${what}: ${stderr.trim()}`)
  else t.match(r.stderr, stderr, `${what}: stderr`)
  t.equal(r.stdout, '', `${what}: nothing on stdout`)
}
const json = (t: T, r: Run): any => {
  try { return JSON.parse(r.stdout) } catch { t.fail(`not JSON: ${JSON.stringify(r.stdout)}`); return {} }
}

t.test('parseValue: numbers and booleans are typed, the rest stays a string', async t => {
  t.equal(parseValue('100'), 100)
  t.equal(parseValue('0.5'), 0.5)
  t.equal(parseValue('-3'), -3)
  t.equal(parseValue('true'), true)
  t.equal(parseValue('false'), false)
  t.equal(parseValue('normal'), 'normal')
  t.equal(parseValue(''), '')
  t.equal(parseValue('10ms'), '10ms')
})

t.test('formatTable aligns columns without trailing blanks', async t => {
  t.equal(formatTable(['A', 'BB', 'C'], [['xxx', 'y', ''], ['z', 'wwww', 'end']]),
    'A    BB    C\nxxx  y\nz    wwww  end\n')
})

t.test('node dist/src/cli/main.js against a running server', { skip: !existsSync(CLI) && `${CLI} is missing: build first (npm test runs tsc)` }, async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await echoServer(t)
  const upstream = `127.0.0.1:${echo.port}`
  const env = { COQUIN_URL: server.url }
  const dead = { COQUIN_URL: `http://127.0.0.1:${await freePort()}` }
  const reg = server.registry

  let r = await cli(['create', 'echo', '-l', '127.0.0.1:0', '-u', upstream], env)
  expectOk(t, r, 'create')
  const proxy = reg.get('echo')
  t.equal(proxy.upstream, upstream)
  t.equal(r.stdout, `created proxy echo: ${proxy.address} -> ${upstream}\n`)

  r = await cli(['toxic', 'add', 'echo', '-t', 'latency', '-n', 'slow', '-a', 'latency=100', '-a', 'distribution=normal', '--tox', '0.5', '--both'], env)
  expectOk(t, r, 'toxic add')
  t.match(r.stdout, /^added toxic slow to echo: latency on both, toxicity 0\.5, latency=100 /)
  const slow = proxy.fault('slow')
  t.match(slow, { type: 'latency', stream: 'both', toxicity: 0.5, attributes: { latency: 100, distribution: 'normal' } })
  t.equal(typeof slow.attributes.latency, 'number', '-a latency=100 is sent as a number')
  proxy.addFault(reg.makeFault({ type: 'noop', stream: 'upstream' }))

  // One at a time: each is a Node start-up, and the machine may be shared.
  const list = await cli(['list'], env)
  const listJSON = await cli(['ls', '--json'], env)
  const inspect = await cli(['inspect', 'echo'], env)
  const before = await cli(['--control', server.url, 'list', '--json'], dead)
  const after = await cli(['list', '--json', '--control', server.url], dead)
  const missing = await cli(['inspect', 'missing'], env)
  const unreachable = await cli(['list'], dead)

  expectOk(t, list, 'list')
  const [header, row, ...rest] = list.stdout.trimEnd().split('\n')
  t.match(header, /^NAME +LISTEN +UPSTREAM +ENABLED +TOXICS$/)
  t.match(row, new RegExp(`^echo +${proxy.address.replaceAll('.', '\\.')} +${upstream} +true +slow, noop_upstream$`))
  t.same(rest, [], 'one row')
  for (const [col, value] of [['LISTEN', proxy.address], ['UPSTREAM', upstream], ['ENABLED', 'true'], ['TOXICS', 'slow']] as const) {
    t.equal(row!.indexOf(value), header!.indexOf(col), `${col} column aligned`)
  }

  expectOk(t, listJSON, 'ls --json')
  t.match(json(t, listJSON), { echo: { name: 'echo', listen: proxy.address, upstream, enabled: true, toxics: [{ name: 'slow' }, { name: 'noop_upstream' }] } })

  expectOk(t, inspect, 'inspect')
  t.match(inspect.stdout, new RegExp(`^name +echo\\nlisten +${proxy.address}\\nupstream +${upstream}\\nenabled +true\\n`))
  t.match(inspect.stdout, /\n\nNAME +TYPE +STREAM +TOXICITY +ATTRIBUTES\n/)
  t.match(inspect.stdout, /\nslow +latency +both +0\.5 +latency=100 distribution=normal jitter=0 /)
  t.match(inspect.stdout, /\nnoop_upstream +noop +upstream +1 +after=0 count=0\n/)

  expectOk(t, before, '--control before the subcommand (over COQUIN_URL)')
  t.ok(json(t, before).echo)
  expectOk(t, after, '--control after the subcommand')
  t.ok(json(t, after).echo)
  expectFail(t, missing, 'inspect a missing proxy', 'coquin: proxy not found: no proxy named "missing"\n')
  expectFail(t, unreachable, 'unreachable control port', `coquin: cannot reach the control API at ${dead.COQUIN_URL}: ECONNREFUSED\n`)

  r = await cli(['toxic', 'update', 'echo', '-n', 'slow', '-a', 'latency=250', '--tox', '1'], env)
  expectOk(t, r, 'toxic update')
  t.match(proxy.fault('slow'), { toxicity: 1, attributes: { latency: 250, distribution: 'normal' } }, 'attributes merged')

  r = await cli(['toxic', 'remove', 'echo', '-n', 'slow'], env)
  expectOk(t, r, 'toxic remove')
  t.equal(r.stdout, 'removed toxic slow from echo\n')
  t.same(proxy.faults.map(f => f.name), ['noop_upstream'])

  r = await cli(['toggle', 'echo'], env)
  expectOk(t, r, 'toggle')
  t.equal(r.stdout, 'proxy echo disabled\n')
  t.equal(reg.get('echo').enabled, false)

  r = await cli(['reset'], env)
  expectOk(t, r, 'reset')
  t.equal(reg.get('echo').enabled, true, 'reset enables every proxy')
  t.same(reg.get('echo').faults, [], 'and removes every toxic')

  r = await cli(['delete', 'echo'], env)
  expectOk(t, r, 'delete')
  t.equal(r.stdout, 'deleted proxy echo\n')
  t.equal(reg.proxies.has('echo'), false)
})

t.test('edge cases, in-process', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const upstream = '127.0.0.1:9'
  const env = { COQUIN_URL: server.url }
  const reg = server.registry

  let r = await inProcess(['list'], env)
  expectOk(t, r, 'list, empty')
  t.match(r.stdout, /^no proxies/)
  r = await inProcess(['list', '--json'], env)
  t.same(json(t, r), {}, 'list --json, empty: {}')

  r = await inProcess(['create', 'p', '-u', upstream, '--json'], env)
  expectOk(t, r, 'create without -l, --json')
  t.match(json(t, r), { name: 'p', listen: /^127\.0\.0\.1:\d+$/, upstream, enabled: true })
  expectFail(t, await inProcess(['create', 'p', '-u', upstream], env), 'create a taken name', 'coquin: proxy already exists\n')
  r = await inProcess(['create', 'cache', '-u', upstream, '--protocol', 'redis', '--json'], env)
  expectOk(t, r, 'create --protocol redis')
  t.match(json(t, r), { name: 'cache', protocol: 'redis' })
  r = await inProcess(['toxic', 'add', 'cache', '-t', 'redis_error', '-n', 'ro', '-a', 'error=READONLY replica', '--json'], env)
  expectOk(t, r, 'a redis fault on a redis proxy')
  t.match(json(t, r), { name: 'ro', type: 'redis_error', attributes: { error: 'READONLY replica' } })
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'pg_error'], env), 'a postgres fault on a tcp proxy',
    /^coquin: .*pg_error works on postgres proxies only, and this proxy's protocol is tcp/)
  r = await inProcess(['create', 'q'], env)
  t.equal(r.code, 1, 'create without -u: exit 1')
  t.match(r.stderr, /required option '-u, --upstream <addr>' not specified/)

  r = await inProcess(['t', 'a', 'p', '-t', 'latency', '-u', '--json'], env)
  expectOk(t, r, 'toxic add --upstream --json (aliases t a)')
  t.match(json(t, r), { name: 'latency_upstream', stream: 'upstream', toxicity: 1, attributes: { latency: 0 } })
  r = await inProcess(['toxic', 'add', 'p', '-t', 'latency', '--downstream', `--control=${server.url}`], { COQUIN_URL: 'http://127.0.0.1:1' })
  expectOk(t, r, '--control=URL after a nested subcommand')
  t.ok(reg.get('p').faults.some(f => f.name === 'latency_downstream'))
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'latency', '-n', 'bad', '-a', 'latency=-5'], env),
    'an attribute the server refuses', /^coquin: invalid attributes: latency/)
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'nope'], env), 'an unknown type', /^coquin: invalid toxic type: unknown type "nope"; the types are latency, .*\(see coquin types\)\n$/)
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'latency', '--upstream', '--both'], env),
    'two streams', 'coquin: give one of --upstream, --downstream, --both\n')
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'latency', '-a', 'latency'], env),
    '-a without =', /argument 'latency' is invalid\. expected key=value/)
  expectFail(t, await inProcess(['toxic', 'add', 'p', '-t', 'latency', '--tox', '2'], env),
    '--tox over 1', /argument '2' is invalid\. expected a number from 0 to 1/)
  expectFail(t, await inProcess(['toxic', 'update', 'p', '-n', 'latency_upstream'], env),
    'toxic update with nothing to change', /^coquin: toxic update: nothing to change/)
  expectFail(t, await inProcess(['toxic', 'update', 'p', '--tox', '0.1'], env),
    'toxic update without -n', /^coquin: toxic update: give the toxic's name/)
  r = await inProcess(['toxic', 'update', 'p', '--toxicName', 'latency_upstream', '--toxicity', '0.25', '--json'], env)
  expectOk(t, r, 'toxiproxy-cli\'s long names: --toxicName, --toxicity')
  t.match(json(t, r), { name: 'latency_upstream', toxicity: 0.25 })
  expectFail(t, await inProcess(['toxic', 'remove', 'p', '-n', 'nope'], env), 'remove a missing toxic', 'coquin: toxic not found: proxy "p" has no toxic named "nope"\n')

  r = await inProcess(['inspect', 'p', '--json'], env)
  expectOk(t, r, 'inspect --json')
  t.same(json(t, r).toxics.map((x: { name: string }) => x.name), ['latency_upstream', 'latency_downstream'])

  await reg.get('p').setEnabled(false)
  r = await inProcess(['toggle', 'p', '--json'], env)
  expectOk(t, r, 'toggle a disabled proxy')
  t.equal(json(t, r).enabled, true)
  t.equal(reg.get('p').enabled, true)
  expectFail(t, await inProcess(['delete', 'nope'], env), 'delete a missing proxy', 'coquin: proxy not found: no proxy named "nope"\n')

  expectFail(t, await inProcess(['list', '--control', 'ftp://x']), 'a bad --control', /^coquin: --control: not a control API URL/)
  r = await inProcess(['list', '--control', server.url.replace('http://', '')])
  expectOk(t, r, '--control host:port, no scheme')

  r = await inProcess(['types'])
  expectOk(t, r, 'types (no server needed)')
  t.match(r.stdout, /^TYPE +ATTRIBUTES \(DEFAULTS\) +SUMMARY\n/)
  t.match(r.stdout, /\nlatency +latency=0 jitter=0 distribution=uniform +Delay/)
  r = await inProcess(['types', '--json'])
  t.ok(json(t, r).some((b: { type: string }) => b.type === 'noop'), 'types --json')
})

t.test('--token and COQUIN_TOKEN', async t => {
  const server = await startCoquin({ port: 0, token: 's3cret' })
  t.teardown(() => server.close())
  expectFail(t, await inProcess(['list', '--control', server.url]), 'no token', 'coquin: missing or wrong bearer token\n')
  expectOk(t, await inProcess(['list', '--control', server.url, '--token', 's3cret']), '--token')
  expectOk(t, await inProcess(['list'], { COQUIN_URL: server.url, COQUIN_TOKEN: 's3cret' }), 'COQUIN_TOKEN')
})
