import t from 'tap'
import { randomBytes } from 'node:crypto'
import { renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { loadConfig, MAX_CONFIG_BYTES } from '../src/control/config.js'
import { builtins } from '../behaviors/index.js'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startCoquin } from '../src/server.js'
import { echoServer, until } from './helpers/net.js'

t.test('serve --watch re-applies a changed config and rejects a broken one, keeping the running state', async t => {
  const echo = await echoServer(t)
  const dir = t.testdir()
  const file = join(dir, 'coquin.yaml')
  const proxy = (name: string, extra = '') =>
    `  - name: ${name}\n    listen: 127.0.0.1:0\n    upstream: 127.0.0.1:${echo.port}\n${extra}`
  writeFileSync(file, `proxies:\n${proxy('a')}`)
  const lines: { msg: string; err?: string }[] = []
  const log = pino({ level: 'info' }, new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(String(chunk))); cb() } }))
  const server = await startCoquin({ port: 0, config: file, watch: true, log })
  t.teardown(() => server.close())
  t.same([...server.registry.proxies.keys()], ['a'])
  const a = server.registry.get('a')

  writeFileSync(file, `proxies:\n${proxy('a')}${proxy('b', '    toxics:\n      - { type: latency, attributes: { latency: 10 } }\n')}`)
  await until(() => server.registry.proxies.has('b'), 10_000, 'proxy b from the changed file')
  t.equal(server.registry.get('b').faults[0]?.type, 'latency')
  t.equal(server.registry.get('a'), a, 'the unchanged proxy is the same object (its links untouched)')

  writeFileSync(file, `proxies:\n${proxy('a')}  - name: c\n    upstrem: nope\n`)
  await until(() => lines.some(l => l.msg === 'config reload rejected'), 10_000, 'the rejection to be logged')
  t.match(lines.find(l => l.msg === 'config reload rejected')?.err, /upstrem: unknown field/)
  t.same([...server.registry.proxies.keys()].sort(), ['a', 'b'], 'the running state is kept')
})

t.test('--watch follows the path: atomic replaces (again and again), delete and recreate, later writes', async t => {
  const echo = await echoServer(t)
  const dir = t.testdir()
  const file = join(dir, 'coquin.yaml')
  const config = (...names: string[]) => `proxies:\n${names.map(n => `  - { name: ${n}, listen: 127.0.0.1:0, upstream: 127.0.0.1:${echo.port} }\n`).join('')}`
  writeFileSync(file, config('a'))
  const lines: { msg: string; err?: string }[] = []
  const log = pino({ level: 'info' }, new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(String(chunk))); cb() } }))
  const server = await startCoquin({ port: 0, config: file, watch: true, log })
  t.teardown(() => server.close())
  const names = () => [...server.registry.proxies.keys()].sort().join(',')
  /** What editors and ConfigMap updates do: write a temp file, rename it over the config. */
  const replace = (text: string) => { const tmp = join(dir, `.tmp-${Math.random()}`); writeFileSync(tmp, text); renameSync(tmp, file) }
  const reloads = () => lines.filter(l => l.msg === 'config reloaded').length
  replace(config('a', 'b'))
  await until(() => names() === 'a,b', 10_000, 'the first atomic replace')
  replace(config('a', 'b', 'c'))
  await until(() => names() === 'a,b,c', 10_000, 'the second atomic replace')
  replace(config('c'))
  await until(() => names() === 'c', 10_000, 'the third')
  unlinkSync(file)
  await until(() => lines.some(l => l.msg === 'config file missing: the running config is kept'), 10_000, 'the missing file noticed')
  t.equal(names(), 'c', 'a deleted file keeps the running config')
  writeFileSync(file, config('d'))
  await until(() => names() === 'd', 10_000, 'the recreated file')
  writeFileSync(file, config('d', 'e'))
  await until(() => names() === 'd,e', 10_000, 'a plain write after all that')
  t.equal(reloads(), 5, 'each reload logged once')
})

t.test('a config over the size cap, or binary, is refused in one line', async t => {
  const dir = t.testdir()
  const big = join(dir, 'big.yaml')
  writeFileSync(big, `# ${'x'.repeat(MAX_CONFIG_BYTES)}\nproxies: []\n`)
  await t.rejects(loadConfig(big, builtins), { code: 'COQUIN_ERR_CONFIG_READ', message: /too large .*the limit is 4 MiB/ })
  const bin = join(dir, 'bin.yaml')
  writeFileSync(bin, randomBytes(1024 * 1024))
  const err = await loadConfig(bin, builtins).then(() => null, (e: Error) => e)
  t.match(err, { code: 'COQUIN_ERR_CONFIG_READ', message: /not a text file/ })
  t.ok(err!.message.split('\n').length === 1 && err!.message.length < 300, `one short line: ${err!.message}`)
  // many issues: the first ten, then how many more
  const many = join(dir, 'many.yaml')
  writeFileSync(many, `proxies:\n${Array.from({ length: 40 }, (_, i) => `  - { name: p${i}, upstrem: x }\n`).join('')}`)
  const e2 = await loadConfig(many, builtins).then(() => null, (e: Error) => e)
  const msgLines = e2!.message.split('\n')
  t.ok(msgLines.length <= 21, `${msgLines.length} lines`)
  t.match(msgLines.at(-1), /and \d+ more issues/)
})
