// What a real load balancer's health checks see in each partition mode: HAProxy (from Debian, started here
// on loopback) checks a backend through coquin with `option httpchk`, and logs every check result. The
// test waits for HAProxy's own log lines — the words an operator would read.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startCoquin } from '../src/server.js'
import { Coquin } from '../src/client/index.js'
import { findExecutable, freePort } from '../examples/support.js'
import { within } from './helpers/net.js'

const HAPROXY = findExecutable('haproxy', ['/usr/sbin', '/usr/local/sbin'])
const skip = HAPROXY ? false : 'haproxy not installed: apt-get install haproxy'

/** HAProxy in the foreground, checking `server` every 100 ms; its log lines come through `waitFor`. */
async function startHaproxy(t: Test, server: number) {
  const dir = mkdtempSync(join(tmpdir(), 'coquin-haproxy-'))
  const front = await freePort()
  writeFileSync(join(dir, 'haproxy.cfg'), [
    'global', '  log stdout format raw local0',
    'defaults', '  mode http', '  log global', '  option log-health-checks',
    '  timeout connect 500ms', '  timeout client 5s', '  timeout server 5s', '  timeout check 300ms',
    'backend be', '  option httpchk GET /healthz', `  server s1 127.0.0.1:${server} check inter 100 fall 1 rise 1`,
    'frontend fe', `  bind 127.0.0.1:${front}`, '  default_backend be', '',
  ].join('\n'))
  const child = spawn(HAPROXY!, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  let watchers: { re: RegExp; from: number; resolve: (line: string) => void }[] = []
  const check = () => {
    watchers = watchers.filter(w => {
      const m = w.re.exec(log.slice(w.from))
      if (m) w.resolve(m[0])
      return !m
    })
  }
  for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (c: string) => { log += c; check() })
  t.teardown(async () => {
    if (child.exitCode === null) { child.kill('SIGKILL'); await once(child, 'exit') }
    rmSync(dir, { recursive: true, force: true })
  })
  /** Resolves with the first line matching `re` logged after this call. */
  const waitFor = (re: RegExp, what: string) => within(new Promise<string>(resolve => {
    watchers.push({ re, from: log.length, resolve })
    check()
  }), 10_000, `HAProxy to log ${what}`).catch(err => { throw new Error(`${err.message}; HAProxy said:\n${log}`) })
  return { front, waitFor }
}

t.test('HAProxy health checks through coquin: each partition mode as a load balancer reports it', { skip }, async t => {
  const backend = http.createServer((_req, res) => res.end('ok'))
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => { backend.closeAllConnections(); backend.close() })
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const coquin = new Coquin(server.url)
  const p = await coquin.proxy({ name: 'be', listen: '127.0.0.1:0', upstream: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` })
  const port = Number(p.listen.slice(p.listen.lastIndexOf(':') + 1))

  const up = /Health check for server be\/s1 succeeded, reason: Layer7 check passed[^\n]*/
  const hap = await startHaproxy(t, port)
  const firstUp = hap.waitFor(up, 'the first check passing')
  await firstUp

  const cases: [mode: 'refuse' | 'reset' | 'blackhole' | 'hold', says: RegExp][] = [
    // a closed port: the connect itself is refused (HAProxy retries and redispatches such errors)
    ['refuse', /Health check for server be\/s1 failed, reason: Layer4 connection problem, info: "Connection refused"[^\n]*/],
    // accepted, then reset: the connection existed
    ['reset', /Health check for server be\/s1 failed, reason: Socket error, info: "Connection reset by peer"[^\n]*/],
    // connected, then silence until the check's timeout
    ['blackhole', /Health check for server be\/s1 failed, reason: Layer7 timeout[^\n]*/],
    ['hold', /Health check for server be\/s1 failed, reason: Layer7 timeout[^\n]*/],
  ]
  for (const [mode, says] of cases) {
    const failed = hap.waitFor(says, `the ${mode} partition's failure`)
    const cut = await coquin.partition({ name: `lb-${mode}`, proxies: ['be'], mode })
    t.match(await failed, says, `${mode}: ${(await failed).replace(/, check duration.*/, '')}`)
    const back = hap.waitFor(up, `the check passing after ${mode} heals`)
    await cut.heal()
    t.ok(await back, `${mode}: healed, the check passes again`)
  }

  // `enabled: false` is the same closed port as `refuse`.
  const refused = hap.waitFor(cases[0]![1], 'the disabled proxy refusing the check')
  await p.update({ enabled: false })
  t.ok(await refused, 'enabled: false: Layer4 connection problem, "Connection refused"')
  const back = hap.waitFor(up, 'the check passing after enabling')
  await p.update({ enabled: true })
  t.ok(await back)
})
