import t, { type Test } from 'tap'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import type net from 'node:net'
import { applyConfig, loadConfig, parseConfig, type Config, type ConfigIssue } from '../src/control/config.js'
import { builtins } from '../behaviors/index.js'
import latency from '../behaviors/latency.js'
import noop from '../behaviors/noop.js'
import { connect, echoServer, listen, readBytes, registry, within } from './helpers/net.js'

// Fixtures use only latency and noop, so these tests do not depend on other behaviors landing.
const behaviors = [latency, noop]
const configs = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'configs')

/** Loads `text` from a temp file; resolves with the ConfigInvalidError it throws. */
async function invalid(t: Test, text: string, name = 'c.yaml') {
  const file = path.join(t.testdir({ [name]: text }), name)
  const err = await loadConfig(file, behaviors).then(
    () => { throw new Error('expected the config to be rejected') },
    (e: Error & { code: string; issues: ConfigIssue[] }) => e)
  t.equal(err.code, 'COQUIN_ERR_CONFIG_INVALID')
  return { file, err, issues: err.issues }
}

t.test('a good YAML config loads with defaults filled in, deeply frozen', async t => {
  const file = path.join(t.testdir({
    'good.yaml': `# comment
proxies:
  - name: redis
    listen: 127.0.0.1:26379
    upstream: 127.0.0.1:6379
    toxics:
      - { type: latency, attributes: { latency: 250 } }
      - { name: quiet, type: noop, stream: both, toxicity: 0.5 }
  - name: web
    listen: 127.0.0.1:0
    upstream: localhost:80
    enabled: false
    protocol: http
settings: { seed: 7, log_level: debug }
`,
  }), 'good.yaml')
  const config = await loadConfig(file, behaviors)
  t.same(config, {
    file,
    proxies: [
      {
        name: 'redis', listen: '127.0.0.1:26379', upstream: '127.0.0.1:6379', enabled: true, protocol: 'tcp', header_faults: false, http_fallback: 'pass',
        toxics: [
          { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1,
            attributes: { latency: 250, jitter: 0, distribution: 'uniform', after: 0, count: 0 } },
          { name: 'quiet', type: 'noop', stream: 'both', toxicity: 0.5, attributes: { after: 0, count: 0 } },
        ],
      },
      { name: 'web', listen: '127.0.0.1:0', upstream: 'localhost:80', enabled: false, protocol: 'http', header_faults: false, http_fallback: 'pass', toxics: [] },
    ],
    settings: { seed: 7, log_level: 'debug' },
  })
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.proxies[0]!.toxics[0]!.attributes), 'frozen to the leaves')
  t.throws(() => { (config.proxies[0] as { listen: string }).listen = 'x' }, TypeError)
})

t.test('an unknown field is an error at its key, never a default', async t => {
  const { file, err, issues } = await invalid(t, `proxies:
  - name: redis
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:6379
    toxics:
      - type: latency
        attributes:
          jitter: 5
          latncy: 250
`)
  t.same(issues, [{ file, line: 9, column: 11, path: 'proxies[0].toxics[0].attributes.latncy', message: 'unknown field' }])
  t.equal(err.message, `${file}:9:11: proxies[0].toxics[0].attributes.latncy: unknown field`)
})

t.test('a wrong type names the value\'s position and field', async t => {
  const { file, err, issues } = await invalid(t, `proxies:
  - name: redis
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:6379
    enabled: "yes"
`)
  t.match(issues, [{ file, line: 5, column: 14, path: 'proxies[0].enabled', message: /^must be boolean/ }])
  t.equal(issues.length, 1)
  t.match(err.message, new RegExp(`^${file}:5:14: proxies\\[0\\]\\.enabled: must be boolean, not string "yes"$`))
})

t.test('a bad enum lists the allowed values', async t => {
  const { file, issues } = await invalid(t, `proxies:
  - name: redis
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:6379
    toxics: [ { type: latency, stream: sideways } ]
`)
  t.same(issues, [{ file, line: 5, column: 40, path: 'proxies[0].toxics[0].stream',
    message: 'must be one of "upstream", "downstream", "both", not string "sideways"' }])
})

t.test('a missing required field points at the object that lacks it', async t => {
  const { file, issues } = await invalid(t, `proxies:
  - name: redis
    listen: 127.0.0.1:0
`)
  t.same(issues, [{ file, line: 2, column: 5, path: 'proxies[0].upstream', message: 'missing required field' }])
})

t.test('every issue is reported at once, in document order', async t => {
  const { file, err, issues } = await invalid(t, `proxies:
  - name: a
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:1
    protocol: udp
    toxics:
      - { type: latency, toxicity: 2, attributes: { latency: -1 } }
      - { type: lag }
      - { stream: up }
      - { type: noop }
      - { type: noop }
  - name: a
    upstream: http://example.com:80
    colour: red
settings: { seed: 1.5 }
`)
  t.same(issues.map(i => [i.line, i.column, i.path, i.message]), [
    [5, 15, 'proxies[0].protocol', 'must be one of "tcp", "http", "redis", "postgres", not string "udp"'],
    [7, 36, 'proxies[0].toxics[0].toxicity', 'must be <= 1'],
    [7, 62, 'proxies[0].toxics[0].attributes.latency', 'must be >= 0'],
    [8, 17, 'proxies[0].toxics[1].type', 'unknown toxic type "lag" (known: latency, noop)'],
    [9, 9, 'proxies[0].toxics[2].type', 'missing required field'],
    [11, 9, 'proxies[0].toxics[4].name', 'toxic name "noop_downstream" given twice in this proxy (first at line 10); give each a name'],
    [12, 5, 'proxies[1].listen', 'missing required field'],
    [12, 11, 'proxies[1].name', 'proxy name "a" given twice (first at line 2)'],
    [13, 15, 'proxies[1].upstream', 'give host:port, not a URL: "http://example.com:80"'],
    [14, 5, 'proxies[1].colour', 'unknown field'],
    [15, 19, 'settings.seed', 'must be integer, not number 1.5'],
  ])
  t.equal(err.message.split('\n').length, issues.length, 'one line per issue')
  t.ok(err.message.split('\n').every(l => l.startsWith(`${file}:`)))
})

t.test('addresses are checked, and one address is not listened on twice', async t => {
  const { issues } = await invalid(t, `proxies:
  - { name: a, listen: 127.0.0.1:7000, upstream: "db:99999" }
  - { name: b, listen: "127.0.0.1:7000", upstream: db }
  - { name: c, listen: 127.0.0.1:0, upstream: db:1 }
  - { name: d, listen: 127.0.0.1:0, upstream: db:2 }
`)
  t.same(issues.map(i => [i.line, i.column, i.path, i.message]), [
    [2, 50, 'proxies[0].upstream', 'not a host:port address: "db:99999"'],
    [3, 24, 'proxies[1].listen', 'address already used by proxies[0] (line 2)'],
    [3, 52, 'proxies[1].upstream', 'not a host:port address: "db"'],
  ], 'port 0 may repeat')
})

t.test('explicitly named toxics given twice point at the second name', async t => {
  const { issues } = await invalid(t, `proxies:
  - name: a
    listen: 127.0.0.1:0
    upstream: db:1
    toxics:
      - { name: slow, type: latency }
      - { name: slow, type: noop }
`)
  t.same(issues.map(i => [i.line, i.column, i.path, i.message]), [
    [7, 17, 'proxies[0].toxics[1].name', 'toxic name "slow" given twice in this proxy (first at line 6)'],
  ])
})

t.test('a YAML syntax error gives file:line:column', async t => {
  const { file, err, issues } = await invalid(t, `proxies:
  - name: a
    listen: [127.0.0.1:0
`)
  t.ok(issues.length >= 1)
  t.match(issues[0], { file, line: 4, column: 1, path: '' })
  t.match(err.message, new RegExp(`^${file}:4:1: \\S`))
})

t.test('duplicate keys are a YAML error', async t => {
  const { issues } = await invalid(t, `proxies: []
proxies: []
`)
  t.match(issues, [{ line: 2, column: 1, message: /unique/ }])
})

t.test('an empty file or a scalar is not a config', async t => {
  t.match((await invalid(t, '')).issues, [{ line: 1, column: 1, path: '(root)', message: 'must be object, not null' }])
  t.match((await invalid(t, 'hello\n')).issues, [{ line: 1, column: 1, path: '(root)', message: 'must be object, not string "hello"' }])
  t.match((await invalid(t, 'settings: {}\n')).issues, [{ line: 1, column: 1, path: 'proxies', message: 'missing required field' }])
})

t.test('an unreadable file is a ConfigReadError', async t => {
  const dir = t.testdir({ sub: {} })
  await t.rejects(loadConfig(path.join(dir, 'nope.yaml'), behaviors), { code: 'COQUIN_ERR_CONFIG_READ', cause: { code: 'ENOENT' } })
  await t.rejects(loadConfig(path.join(dir, 'sub'), behaviors), { code: 'COQUIN_ERR_CONFIG_READ', cause: { code: 'EISDIR' } })
})

t.test('Toxiproxy\'s JSON config (a top-level array) loads, toxics accepted', async t => {
  const file = path.join(t.testdir({
    'toxiproxy.json': JSON.stringify([
      { name: 'web_dev_frontend_1', listen: '[::]:18080', upstream: 'webapp.domain:8080', enabled: true },
      { name: 'web_dev_mysql_1', listen: '[::]:13306', upstream: 'database.domain:3306', enabled: false,
        toxics: [{ type: 'latency', stream: 'upstream', attributes: { latency: 10 } }] },
    ], null, 2),
  }), 'toxiproxy.json')
  const config = await loadConfig(file, behaviors)
  t.match(config, {
    settings: {},
    proxies: [
      { name: 'web_dev_frontend_1', listen: '[::]:18080', enabled: true, protocol: 'tcp', header_faults: false, http_fallback: 'pass', toxics: [] },
      { name: 'web_dev_mysql_1', enabled: false, toxics: [{ name: 'latency_upstream', attributes: { latency: 10, jitter: 0 } }] },
    ],
  })
})

t.test('issues in Toxiproxy\'s format are named as in the file', async t => {
  const { file, issues } = await invalid(t, `[
  {"name": "a", "listen": "127.0.0.1:0", "upstream": 5432},
  {"name": "b", "listen": "127.0.0.1:0", "upstream": "db:1", "extra": true}
]
`, 'toxiproxy.json')
  t.same(issues, [
    { file, line: 2, column: 54, path: '[0].upstream', message: 'must be string, not number 5432' },
    { file, line: 3, column: 62, path: '[1].extra', message: 'unknown field' },
  ])
})

t.test('applyConfig checks every spec against the registry\'s own behaviors before touching anything', async t => {
  const text = 'proxies: [ { name: a, listen: "127.0.0.1:0", upstream: "db:1", toxics: [ { type: noop } ] } ]\n'
  const config = parseConfig('inline.yaml', text, behaviors)
  t.equal(config.file, 'inline.yaml')
  const reg = await registry(t, { behaviors: [latency] })
  await t.rejects(applyConfig(reg, config), { code: 'COQUIN_ERR_TOXIC_TYPE' })
  t.equal(reg.proxies.size, 0, 'nothing applied')
})

t.test('every example config in configs/ loads with the built-in behaviors', async t => {
  const files = (await readdir(configs)).filter(f => /\.(ya?ml|json)$/.test(f) && f !== 'coquin.schema.json' && f !== 'default.yaml')
  t.ok(files.length >= 3)
  for (const f of files) {
    await t.resolves(loadConfig(path.join(configs, f), builtins), f)
  }
})

// applyConfig on a live registry --------------------------------------------------------------

async function echoThrough(t: Test, c: net.Socket, what: string) {
  c.write(what)
  t.equal((await within(readBytes(c, what.length), 5000, 'echo')).toString(), what)
}

t.test('applyConfig adds, removes and updates proxies and faults, leaving unchanged links alone', async t => {
  const echo = await echoServer(t)
  const other = await echoServer(t)
  const up = `127.0.0.1:${echo.port}`
  const reg = await registry(t)
  const apply = (yaml: string): Promise<Config> => {
    const config = parseConfig('live.yaml', yaml, behaviors)
    return applyConfig(reg, config).then(() => config)
  }

  await apply(`proxies:
  - { name: keep, listen: "127.0.0.1:0", upstream: "${up}", toxics: [ { name: n, type: noop } ] }
  - name: change
    listen: 127.0.0.1:0
    upstream: ${up}
    toxics:
      - { name: slow, type: latency, attributes: { latency: 1 } }
      - { name: gone, type: noop }
      - { name: flip, type: noop, stream: upstream }
  - { name: drop, listen: "127.0.0.1:0", upstream: "${up}" }
`)
  t.same([...reg.proxies.keys()], ['keep', 'change', 'drop'])
  const keep = reg.get('keep')
  const change = reg.get('change')
  t.same(change.faults.map(f => f.name), ['slow', 'gone', 'flip'])
  const [slow, , flip] = change.faults

  const client = await connect(t, keep.port)
  await echoThrough(t, client, 'before')
  t.equal(keep.links.size, 1)
  const [link] = keep.links
  const keepFault = keep.faults[0]

  await apply(`proxies:
  - { name: keep, listen: "127.0.0.1:0", upstream: "${up}", toxics: [ { name: n, type: noop } ] }
  - name: change
    listen: 127.0.0.1:0
    upstream: ${up}
    toxics:
      - { name: slow, type: latency, toxicity: 0.5, attributes: { latency: 2 } }
      - { name: flip, type: noop, stream: downstream }
      - { name: new, type: noop }
  - { name: added, listen: "127.0.0.1:0", upstream: "${up}", enabled: false }
`)
  t.same([...reg.proxies.keys()].sort(), ['added', 'change', 'keep'], 'drop deleted, added created')
  t.equal(reg.get('keep'), keep, 'unchanged proxy: same object')
  t.equal(keep.faults[0], keepFault, 'its fault: same object')
  t.equal(keep.links.size, 1)
  t.equal([...keep.links][0], link, 'its open link: same object')
  await echoThrough(t, client, 'after')

  t.equal(reg.get('change'), change, 'fault changes keep the proxy')
  t.same(change.faults.map(f => [f.name, f.stream]), [['slow', 'downstream'], ['flip', 'downstream'], ['new', 'downstream']])
  t.equal(change.faults[0], slow, 'changed attributes and toxicity: updated in place')
  t.match(slow, { toxicity: 0.5, attributes: { latency: 2 } })
  t.not(change.faults[1], flip, 'changed stream: replaced')
  t.equal(reg.get('added').enabled, false)

  // Addresses, enabled and protocol.
  await apply(`proxies:
  - { name: keep, listen: "127.0.0.1:0", upstream: "127.0.0.1:${other.port}", protocol: http }
  - { name: change, listen: "127.0.0.1:0", upstream: "${up}", enabled: false }
  - { name: added, listen: "127.0.0.1:0", upstream: "${up}" }
`)
  t.not(reg.get('keep'), keep, 'changed protocol: recreated')
  t.match(reg.get('keep'), { protocol: 'http', upstream: `127.0.0.1:${other.port}`, faults: [] })
  t.equal(reg.get('change'), change)
  t.equal(change.enabled, false)
  t.same(change.faults, [])
  t.equal(reg.get('added').enabled, true, 'enabled: now listening')
  await within(once(client, 'close'), 5000, 'the recreated proxy\'s old link closed')

  const c2 = await connect(t, reg.get('added').port)
  await echoThrough(t, c2, 'added')
  const addedLink = [...reg.get('added').links][0]
  await apply(`proxies:
  - { name: keep, listen: "127.0.0.1:0", upstream: "127.0.0.1:${other.port}", protocol: http }
  - { name: change, listen: "127.0.0.1:0", upstream: "127.0.0.1:${other.port}", enabled: true }
  - { name: added, listen: "127.0.0.1:0", upstream: "${up}" }
`)
  t.match(change, { enabled: true, upstream: `127.0.0.1:${other.port}` })
  t.equal([...reg.get('added').links][0], addedLink, 'the other proxies\' links are untouched')
  await echoThrough(t, c2, 'still')
})

t.test('applying the same config twice changes nothing', async t => {
  const echo = await echoServer(t)
  const reg = await registry(t)
  const config = parseConfig('same.yaml', `proxies:
  - { name: a, listen: "127.0.0.1:0", upstream: "127.0.0.1:${echo.port}", toxics: [ { type: latency, attributes: { latency: 1 } } ] }
`, behaviors)
  await applyConfig(reg, config)
  const a = reg.get('a')
  const fault = a.faults[0]!
  const attributes = fault.attributes
  await applyConfig(reg, config)
  t.equal(reg.get('a'), a)
  t.equal(a.faults[0], fault)
  t.equal(fault.attributes, attributes, 'not even re-set')
})

t.test('a proxy that cannot start fails the apply, and the others are still applied', async t => {
  const busy = await listen(t, () => {})
  const reg = await registry(t)
  const config = parseConfig('busy.yaml', `proxies:
  - { name: busy, listen: "127.0.0.1:${busy.port}", upstream: "db:1" }
  - { name: fine, listen: "127.0.0.1:0", upstream: "db:1" }
`, behaviors)
  const err = await applyConfig(reg, config).then(() => null, (e: Error & { code: string; failures: { proxy: string }[] }) => e)
  t.match(err, { code: 'COQUIN_ERR_LISTEN', failures: [{ proxy: 'busy' }] })
  t.same([...reg.proxies.keys()], ['fine'])
})

t.test('YAML anchors and aliases are resolved, and an alias bomb is refused', async t => {
  const file = path.join(t.testdir({
    'anchors.yaml': `x-slow: &slow { type: latency, attributes: { latency: 100 } }
proxies:
  - { name: a, listen: "127.0.0.1:0", upstream: "db:1", toxics: [ *slow ] }
`,
  }), 'anchors.yaml')
  await t.rejects(loadConfig(file, behaviors), { code: 'COQUIN_ERR_CONFIG_INVALID', issues: [{ path: 'x-slow', message: 'unknown field' }] },
    'top-level keys are checked too: anchors go inside a known key')
  const ok = parseConfig('anchors.yaml', `proxies:
  - { name: a, listen: "127.0.0.1:0", upstream: "db:1", toxics: [ &slow { type: latency, attributes: { latency: 100 } } ] }
  - { name: b, listen: "127.0.0.1:0", upstream: "db:1", toxics: [ *slow ] }
`, behaviors)
  t.equal(ok.proxies[1]!.toxics[0]!.attributes.latency, 100)
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
  for (let i = 1; i < 8; i++) bomb.push(`${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10).fill(`*${'abcdefgh'[i - 1]}`).join(', ')}]`)
  t.throws(() => parseConfig('bomb.yaml', bomb.join('\n') + '\n', behaviors), { code: 'COQUIN_ERR_CONFIG_INVALID', issues: [{ line: 1, column: 1, message: /alias/i }] })
})
