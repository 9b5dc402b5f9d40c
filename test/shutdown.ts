// SIGTERM as a user sends it: `node dist/src/cli/main.js serve`, a proxy made through the API, a link open.
// Listeners and the control port stop at once; open links run on for --grace, then are cut; exit 0.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { echoServer, readBytes, within } from './helpers/net.js'

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))

async function serve(t: { teardown(fn: () => unknown): void }, grace: number): Promise<{ child: ChildProcess; api: string; exited: Promise<{ code: number | null; ms: number }>; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--grace', String(grace), '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''; let err = ''
  child.stdout!.on('data', d => { out += d })
  child.stderr!.on('data', d => { err += d })
  let signalledAt = 0
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number | null, ms: Date.now() - signalledAt }))
  const origKill = child.kill.bind(child)
  child.kill = (s?: NodeJS.Signals | number) => { signalledAt = Date.now(); return origKill(s) }
  await within(new Promise<void>(resolve => { const check = () => { if (/control API on http:\/\/\S+?,/.test(out)) resolve(); else setTimeout(check, 20) }; check() }), 10_000, 'coquin to start')
  const api = /control API on (http:\/\/\S+?),/.exec(out)![1]!
  return { child, api, exited, stderr: () => err }
}

async function proxyThrough(api: string, upstream: number): Promise<number> {
  const res = await fetch(`${api}/proxies`, { method: 'POST', body: JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstream}` }) })
  const p = await res.json() as { listen: string }
  return Number(p.listen.split(':').pop())
}

const refused = (port: number) => new Promise<string>(resolve => {
  const c = net.connect(port, '127.0.0.1')
  c.on('connect', () => { c.destroy(); resolve('connected') })
  c.on('error', e => resolve((e as NodeJS.ErrnoException).code ?? 'error'))
})

t.test('SIGTERM: listeners stop, the open link flows through the grace and the process exits 0 when it ends', { skip: !existsSync(CLI) && 'build first' }, async t => {
  const echo = await echoServer(t)
  const { child, api, exited } = await serve(t, 10_000)
  const port = await proxyThrough(api, echo.port)
  const c = net.connect(port, '127.0.0.1'); t.teardown(() => c.destroy())
  await once(c, 'connect')
  c.write('before'); t.equal((await within(readBytes(c, 6), 5000, 'echo')).toString(), 'before')
  child.kill('SIGTERM')
  // Each try waits on its own connect or error; the listener closes as soon as the signal is handled.
  const start = Date.now()
  let answer = await refused(port)
  while (answer !== 'ECONNREFUSED' && Date.now() - start < 5000) answer = await refused(port)
  t.equal(answer, 'ECONNREFUSED', 'the proxy no longer accepts')
  t.ok(await fetch(`${api}/version`).then(() => false, () => true), 'the control port is closed')
  c.write('during'); t.equal((await within(readBytes(c, 6), 5000, 'echo in grace')).toString(), 'during', 'the link still carries data in the grace')
  t.equal(child.exitCode, null, 'still running while the link is open')
  c.end()
  const { code, ms } = await within(exited, 5000, 'exit')
  t.equal(code, 0, 'exit 0')
  t.ok(ms < 5000, `exits once the link ended (${ms} ms after SIGTERM), not after the 10 s grace`)
})

t.test('SIGTERM: a link that stays open is cut after the grace; a second signal exits at once', { skip: !existsSync(CLI) && 'build first' }, async t => {
  const echo = await echoServer(t)
  const { child, api, exited } = await serve(t, 1000)
  const port = await proxyThrough(api, echo.port)
  const c = net.connect(port, '127.0.0.1'); t.teardown(() => c.destroy())
  await once(c, 'connect')
  c.on('error', () => {})
  const closed = once(c, 'close')
  child.kill('SIGTERM')
  const { code, ms } = await within(exited, 5000, 'exit')
  t.equal(code, 0, 'exit 0')
  t.ok(ms >= 900 && ms < 3000, `exits after about the grace (${ms} ms)`)
  await within(closed, 2000, 'link closed')
  t.pass('the link was closed')

  const second = await serve(t, 10_000)
  const port2 = await proxyThrough(second.api, echo.port)
  const c2 = net.connect(port2, '127.0.0.1'); t.teardown(() => c2.destroy())
  c2.on('error', () => {})
  await once(c2, 'connect')
  second.child.kill('SIGTERM')
  await new Promise(r => setTimeout(r, 200))
  second.child.kill('SIGTERM')
  const r = await within(second.exited, 3000, 'exit on the second signal')
  t.ok(r.ms < 1000, `a second signal exits at once (${r.ms} ms, code ${r.code})`)
})
