import t from 'tap'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { startCoquin } from '../src/server.js'
import { connect, echoServer, until, within } from './helpers/net.js'

t.test('every metric the example Grafana dashboard queries is one coquin exports', async t => {
  const dashboard = JSON.parse(readFileSync(new URL('../examples/grafana/dashboard.json', import.meta.url), 'utf8')) as
    { panels: { targets: { expr: string }[] }[] }
  const used = new Set<string>()
  for (const p of dashboard.panels) for (const { expr } of p.targets) {
    for (const m of expr.matchAll(/\b((?:coquin|toxiproxy)_[a-z_]+?)(?:_bucket)?\{/g)) used.add(m[1]!)
  }
  t.ok(used.size >= 8, `${used.size} metrics used`)
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const echo = await echoServer(t)
  const p = await server.registry.create({ name: 'g', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`,
    toxics: [{ type: 'noop' }] })
  const c = await connect(t, p.port)
  c.resume()
  c.end('x')
  await within(once(c, 'close'), 5000, 'close')
  await until(() => p.connections === 0)
  const text = await (await fetch(`${server.url}/metrics`)).text()
  for (const name of used) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
})
