import t from 'tap'
import { writeFileSync } from 'node:fs'
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
