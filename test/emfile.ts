// coquin under a low `ulimit -n`: it must survive descriptor exhaustion. What Node/libuv do on EMFILE
// at accept: accept and close the pending connections on a spare descriptor (the clients see a reset)
// and keep listening, with no 'error' on the server; an upstream connect that hits EMFILE ends its link
// as upstream_unreachable (counted by code, warned rate-limited). Once links close, accepting works again.
// The limit is 160, not 64: Node's ESM loader opens coquin's modules concurrently and fails below ~150.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { echoServer, within } from './helpers/net.js'

const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))

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
  const busy = await fetch(`${api}/proxies`, { signal: AbortSignal.timeout(2000) }).then(r => r.status, () => 0)
  t.comment(`control API while out of descriptors: ${busy || 'unreachable'}`)

  for (const s of socks) s.destroy()
  await new Promise(r => setTimeout(r, 500))
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
