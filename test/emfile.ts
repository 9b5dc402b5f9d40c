// coquin under a low `ulimit -n`: it must survive descriptor exhaustion. Left alone, Node/libuv would
// accept and close the excess connections on a spare descriptor, silently; coquin keeps a link budget
// from the limit instead (src/datapath/link-budget.ts): over it, a new connection is reset at once, counted
// (coquin_connections_shed_total) and warned about, rate-limited; the reserve keeps the control API and
// upstream connects working; once links close, connections are served again.
// The limit is 160, not 64: Node's ESM loader opens coquin's modules concurrently and fails below ~150.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { connect, echoServer, registry, until, within } from './helpers/net.js'

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise(r => s.close(r))
  return port
}

t.test('EMFILE: coquin survives running out of descriptors, then accepts again', { skip: !existsSync(CLI) && 'build first' }, async t => {
  const echo = await echoServer(t)
  const P = await freePort()
  const child = spawn('bash', ['-c', `ulimit -n 160; exec "${process.execPath}" "${CLI}" proxy -l 127.0.0.1:${P} -u 127.0.0.1:${echo.port} --port 0 --log-format json --grace 0`], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''; let err = ''
  child.stdout!.on('data', d => { out += d })
  child.stderr!.on('data', d => { err += d })
  const exited = once(child, 'exit')
  await within(new Promise<void>(r => { const c = () => (/control API on/.test(out) ? r() : setTimeout(c, 20)); c() }), 10_000, `coquin to start: ${err}`)
  const api = /control API on (http:\/\/\S+?),/.exec(out)![1]!

  const socks: net.Socket[] = []
  const res = { echoed: 0, failed: 0 }
  await Promise.all(Array.from({ length: 100 }, () => new Promise<void>(resolve => {
    const c = net.connect(P, '127.0.0.1'); socks.push(c)
    const timer = setTimeout(resolve, 5000)                      // a connection left waiting counts as neither
    c.on('connect', () => c.write('x'))
    c.on('data', () => { res.echoed++; clearTimeout(timer); resolve() })
    c.on('error', () => {})
    c.on('close', () => { if (!c.readableEnded || c.bytesRead === 0) res.failed++; clearTimeout(timer); resolve() })
  })))
  t.comment(`100 connections under ulimit -n 160: ${res.echoed} echoed, ${res.failed} failed`)
  t.ok(res.echoed > 0 && res.echoed < 100, `some links work, the rest fail (${res.echoed} echoed)`)
  t.ok(res.failed > 0, `connections beyond the limit fail (${res.failed})`)
  t.equal(child.exitCode, null, 'coquin is still running')
  t.equal(await fetch(`${api}/proxies`, { signal: AbortSignal.timeout(2000) }).then(r => r.status, () => 0), 200,
    'the control API answers at the limit (the reserve)')
  const metrics = await (await fetch(`${api}/metrics`)).text()
  const shed = Number(/^coquin_connections_shed_total\{proxy="proxy"\} (\d+)$/m.exec(metrics)?.[1] ?? 0)
  t.ok(shed > 0 && shed <= res.failed, `the connections over the limit were shed and counted (${shed})`)
  const warnings = err.split('\n').filter(l => l.includes('link limit reached'))
  t.equal(warnings.length, 1, 'one warning line, not one per connection')

  for (const s of socks) s.destroy()
  const links = async () => ((await (await fetch(`${api}/proxies/proxy/links`)).json()) as unknown[]).length
  for (const start = Date.now(); await links() > 0;) {
    if (Date.now() - start > 5000) throw new Error('links did not close')
    await new Promise(r => setImmediate(r))
  }
  const again = net.connect(P, '127.0.0.1'); t.teardown(() => again.destroy())
  again.write('hello')
  const [echoed] = await within(once(again, 'data'), 5000, 'echo after recovery') as [Buffer]
  t.equal(echoed.toString(), 'hello', 'once descriptors free up, new connections work again')
  t.equal((await fetch(`${api}/proxies`, { signal: AbortSignal.timeout(5000) })).status, 200, 'the control API answers')
  again.destroy()
  child.kill('SIGTERM')
  const [code] = await within(exited, 5000, 'exit')
  t.equal(code, 0, 'exits 0 on SIGTERM')
  t.notMatch(err, /uncaught|FATAL|RangeError|TypeError/i, 'no crash in the log')
})

t.test('the link budget: over --max-links, connections are reset and counted; as links close, served again', async t => {
  const echo = await echoServer(t)
  const shedBy: string[] = []
  const reg = await registry(t, { maxLinks: 2, observer: { ...(await import('../src/observe/observer.js')).nullObserver, connectionShed: p => { shedBy.push(p) } } })
  const p = await reg.create({ name: 'budget', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  const a = await connect(t, p.port)
  const b = await connect(t, p.port)
  await until(() => p.links.size === 2, 5000, 'two links')
  const c = net.connect(p.port, '127.0.0.1')
  t.teardown(() => c.destroy())
  const [err] = await within(once(c, 'error'), 5000, 'the third to be reset') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNRESET', 'the third connection is reset')
  t.same(shedBy, ['budget'], 'and counted')
  t.equal(p.shed, 1)
  a.destroy()
  await until(() => p.links.size === 1, 5000, 'a link to close')
  const d = await connect(t, p.port)
  d.write('again')
  const [echoed] = await within(once(d, 'data'), 5000, 'echo') as [Buffer]
  t.equal(echoed.toString(), 'again', 'a freed place is used')
  t.equal(reg.budget.open, 2)
  b.destroy(); d.destroy()
  await until(() => reg.budget.open === 0, 5000, 'the budget to be back to 0')
})
