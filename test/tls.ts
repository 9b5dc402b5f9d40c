// TLS on a proxy: terminating it from clients (a given certificate or a throwaway self-signed one),
// originating it to the upstream (verified against a CA, or insecure), both at once, and the
// failures: a client that does not speak TLS or never finishes its handshake, an upstream whose
// certificate is not trusted. Real TLS clients and servers, certificates from a test CA.
import t, { type Test } from 'tap'
import tls from 'node:tls'
import https from 'node:https'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { collect, connect, echoServer, listen, registry, sendRandom, hashUntilEnd, until, within } from './helpers/net.js'
import { leaf, testCA, type Pem } from './helpers/tls.js'
import { portOf, withApi } from './helpers/api.js'
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ManualClock } from '../src/core/clock.js'
import { observers, nullObserver, type Observer } from '../src/observe/observer.js'
import { createMetrics } from '../src/observe/metrics.js'
import { parseConfig } from '../src/control/config.js'
import { builtins } from '../behaviors/index.js'
import { selfSignedCertificate } from '../src/datapath/tls.js'
import type { Registry } from '../src/control/registry.js'

type T = Test

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))
const hasCurl = spawnSync('curl', ['--version']).status === 0

const ca = await testCA()
const cert = await leaf(ca, ['localhost', '127.0.0.1'])
const otherCA = await testCA('another CA')
const stranger = await leaf(otherCA, ['localhost', '127.0.0.1'])

/** Records TLS failures and upstream connect errors. */
function spy(): Observer & { tls: string[]; connect: string[] } {
  const tlsFailures: string[] = [], connectErrors: string[] = []
  return {
    ...nullObserver, tls: tlsFailures, connect: connectErrors,
    tlsHandshakeFailed: (_p, side, code) => { tlsFailures.push(`${side}:${code}`) },
    upstreamConnectError: (_p, code) => { connectErrors.push(code) },
  }
}

/** A TLS echo server with this certificate. */
async function tlsEcho(t: T, pem: Pem): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0
  const sockets = new Set<net.Socket>()
  const server = tls.createServer({ cert: pem.cert, key: pem.key, allowHalfOpen: true }, s => {
    accepted++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted }
}

async function tlsConnect(t: T, port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  const c = tls.connect({ port, host: '127.0.0.1', ca: ca.cert, servername: 'localhost', ...opts })
  t.teardown(() => c.destroy())
  await within(once(c, 'secureConnect'), 5000, 'TLS handshake')
  return c
}

async function proxy(t: T, reg: Registry, upstream: number, spec: Record<string, unknown>) {
  const p = await reg.create({ name: `tls${Math.random().toString(36).slice(2, 8)}`, listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstream}`, ...spec })
  return p
}

t.test('terminate: a TLS client through coquin to a plain upstream, byte-exact both ways, half-close kept', async t => {
  const echo = await echoServer(t)
  const reg = await registry(t)
  const p = await proxy(t, reg, echo.port, { tls: { listen: { cert: cert.cert, key: cert.key } } })
  const c = await tlsConnect(t, p.port)
  t.ok(c.authorized, 'the client verified coquin\'s certificate against the test CA')
  const echoed = hashUntilEnd(c)
  const sent = await sendRandom(c, 4 * 1024 * 1024, { end: true })
  const got = await within(echoed, 20_000, 'echo')
  t.equal(got.bytes, 4 * 1024 * 1024, 'every byte came back after the client\'s FIN (half-close passed through TLS)')
  t.equal(got.hash, sent, 'byte-exact')
  await until(() => p.links.size === 0, 5000, 'link to end')
  t.equal(JSON.stringify(p.toJSON().tls), JSON.stringify({ listen: { cert: cert.cert, key: '(inline)' } }), 'the API shows the spec, never an inline key')
})

t.test('terminate in HTTP mode: HTTP faults act on HTTPS requests of one keep-alive connection', async t => {
  const upstream = await listen(t, s => {
    let buf = ''
    s.on('data', d => {
      buf += d
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4)
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      }
    })
  })
  const reg = await registry(t)
  const p = await proxy(t, reg, upstream.port, {
    protocol: 'http', tls: { listen: { cert: cert.cert, key: cert.key } },
    toxics: [{ type: 'http_status', attributes: { status: 503, match: { path: '/fail' } } }],
  })
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: ca.cert })
  t.teardown(() => agent.destroy())
  const get = (p_: string) => new Promise<{ status: number; body: string; socket: net.Socket }>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port: p.port, path: p_, agent }, res => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, body, socket: res.socket }))
    })
    req.on('error', reject)
  })
  const a = await within(get('/ok'), 5000, '/ok')
  const b = await within(get('/fail'), 5000, '/fail')
  const c = await within(get('/ok'), 5000, '/ok again')
  t.same([a.status, a.body, b.status, c.status, c.body], [200, 'ok', 503, 200, 'ok'], 'the matching request failed, the others passed')
  t.equal(a.socket, c.socket, 'all three went over one TLS connection')
  t.equal(upstream.sockets.size, 1, 'one upstream connection')
})

t.test('originate: a plain client through coquin to a TLS upstream verified against a CA', async t => {
  const up = await tlsEcho(t, cert)
  const reg = await registry(t)
  const p = await proxy(t, reg, up.port, { tls: { upstream: { ca: ca.cert, servername: 'localhost' } } })
  const c = await connect(t, p.port)
  const echoed = hashUntilEnd(c)
  const sent = await sendRandom(c, 1024 * 1024, { end: true })
  const got = await within(echoed, 10_000, 'echo')
  t.equal(got.hash, sent, 'byte-exact through coquin\'s TLS to the upstream')
})

t.test('originate: the servername defaults to the upstream host, and a name the certificate lacks fails', async t => {
  const up = await tlsEcho(t, cert)
  const reg = await registry(t, { observer: spy() })
  const byHost = await reg.create({ name: 'byhost', listen: '127.0.0.1:0', upstream: `localhost:${up.port}`, tls: { upstream: { ca: ca.cert } } })
  const c = await connect(t, byHost.port)
  c.end('hello')
  t.equal((await within(collect(c), 5000, 'echo')).data.toString(), 'hello', 'localhost verified by its name')
  const wrong = await reg.create({ name: 'wrong', listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}`, tls: { upstream: { ca: ca.cert, servername: 'example.com' } } })
  const d = await connect(t, wrong.port)
  d.write('x')
  const r = await within(collect(d), 5000, 'close')
  t.equal(r.data.length, 0, 'nothing reaches a client whose upstream failed verification')
  t.equal(r.error, undefined, 'the client is closed cleanly (FIN), as for any unreachable upstream')
  t.same((reg.observer as ReturnType<typeof spy>).tls, ['upstream:ERR_TLS_CERT_ALTNAME_INVALID'], 'counted as an upstream TLS failure')
})

t.test('originate: an untrusted upstream certificate closes the client cleanly and is counted; insecure accepts it', async t => {
  const up = await tlsEcho(t, stranger)
  const s = spy()
  const reg = await registry(t, { observer: s })
  const strict = await proxy(t, reg, up.port, { tls: { upstream: { ca: ca.cert, servername: 'localhost' } } })
  const c = await connect(t, strict.port)
  c.write('hello')
  const r = await within(collect(c), 5000, 'close')
  t.equal(r.data.length, 0, 'no byte of the untrusted upstream reaches the client')
  t.equal(r.error, undefined, 'closed cleanly')
  t.same(s.connect, ['UNABLE_TO_VERIFY_LEAF_SIGNATURE'], 'counted as an upstream connect error, by code')
  t.same(s.tls, ['upstream:UNABLE_TO_VERIFY_LEAF_SIGNATURE'], 'and as a TLS handshake failure')
  await until(() => strict.links.size === 0, 5000, 'link to end')

  const lax = await proxy(t, reg, up.port, { tls: { upstream: { insecure: true } } })
  const d = await connect(t, lax.port)
  d.end('hello')
  t.equal((await within(collect(d), 5000, 'echo')).data.toString(), 'hello', 'insecure: the same upstream is used')
})

t.test('both: a TLS client, a throwaway self-signed certificate, a TLS upstream', async t => {
  const up = await tlsEcho(t, cert)
  const reg = await registry(t)
  const p = await proxy(t, reg, up.port, { tls: { listen: true, upstream: { ca: ca.cert, servername: 'localhost' } } })
  const own = p.tls!.listen!.cert
  const c = await tlsConnect(t, p.port, { ca: own })
  t.ok(c.authorized, 'the client trusts the throwaway certificate as its own CA')
  t.same(p.toJSON().tls, { listen: {}, upstream: { servername: 'localhost', ca: ca.cert } }, 'true is shown as {}')
  c.end('through two TLS hops')
  t.equal((await within(collect(c), 5000, 'echo')).data.toString(), 'through two TLS hops')
})

t.test('a client that does not speak TLS is counted, gets no upstream connection, and coquin carries on', async t => {
  const up = await tlsEcho(t, cert)
  const plainUp = await echoServer(t)
  const s = spy()
  const reg = await registry(t, { observer: s })
  const p = await proxy(t, reg, plainUp.port, { tls: { listen: { cert: cert.cert, key: cert.key } } })
  const c = await connect(t, p.port)
  c.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  const r = await within(collect(c), 5000, 'close')
  t.notOk(r.data.toString().includes('HTTP/1.1 200'), 'no HTTP answer')
  await until(() => s.tls.length === 1, 5000, 'the failure to be counted')
  t.match(s.tls[0], /^client:ERR_SSL_/, `counted: ${s.tls[0]}`)
  t.equal(plainUp.sockets.size, 0, 'no upstream connection was made')
  t.equal(p.links.size, 0, 'no link')
  const ok = await tlsConnect(t, p.port)
  ok.end('still here')
  t.equal((await within(collect(ok), 5000, 'echo')).data.toString(), 'still here', 'the next TLS client is served')
  t.equal(up.accepted(), 0)
})

t.test('a client that never finishes its handshake is dropped at handshake_timeout; shutdown drops pending ones uncounted', async t => {
  const echo = await echoServer(t)
  const clock = new ManualClock()
  const s = spy()
  const reg = await registry(t, { clock, observer: s })
  const p = await proxy(t, reg, echo.port, { tls: { listen: { cert: cert.cert, key: cert.key, handshake_timeout: 2000 } } })
  const c = await connect(t, p.port)
  const closed = collect(c)
  await until(() => clock.pending > 0, 5000, 'the handshake timer')
  clock.advance(1999)
  t.equal(s.tls.length, 0, 'not yet')
  clock.advance(1)
  await within(closed, 5000, 'close')
  t.same(s.tls, ['client:ETIMEDOUT'], 'counted as a timeout')
  t.equal(clock.pending, 0, 'no timer left')

  const d = await connect(t, p.port)
  const dClosed = collect(d)
  await until(() => clock.pending > 0, 5000, 'the handshake timer')
  await reg.close()
  await within(dClosed, 5000, 'close at shutdown')
  t.same(s.tls, ['client:ETIMEDOUT'], 'a handshake cut by shutdown is not a failure')
  t.equal(clock.pending, 0, 'its timer was cleared')
})

t.test('reset_peer under TLS: the client sees a TCP reset', async t => {
  const echo = await echoServer(t)
  const reg = await registry(t)
  const p = await proxy(t, reg, echo.port, { tls: { listen: { cert: cert.cert, key: cert.key } } })
  const c = await tlsConnect(t, p.port)
  c.write('before')
  await within(once(c, 'data'), 5000, 'echo')
  reg.get(p.name).addFault(reg.makeFault({ type: 'reset_peer', attributes: { timeout: 0 } }))
  const closed = collect(c)
  c.write('after')   // echoed: the downstream stage arms on it
  const r = await within(closed, 5000, 'reset')
  t.equal(r.error?.code, 'ECONNRESET', 'RST on the TCP connection beneath TLS')
})

t.test('metrics: coquin_tls_handshake_failures_total by side and code', async t => {
  const echo = await echoServer(t)
  let reg!: Registry
  const m = createMetrics({ coquin: () => reg.proxies.values() })
  const s = spy()
  reg = await registry(t, { observer: observers(m.observer, s) })
  const p = await proxy(t, reg, echo.port, { tls: { listen: { cert: cert.cert, key: cert.key } } })
  const c = await connect(t, p.port)
  c.write('not a client hello, not at all\r\n\r\n')
  await within(collect(c), 5000, 'close')
  await until(() => s.tls.length === 1, 5000, 'the failure')
  const body = (await m.text()).body
  t.match(body, new RegExp(`coquin_tls_handshake_failures_total\\{proxy="${p.name}",side="client",code="ERR_SSL_[A-Z_]+"\\} 1`))
})

t.test('config: cert, key and ca files are read relative to the config file; a missing one is named with its line', async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(path.join(dir, 'cert.pem'), cert.cert)
  writeFileSync(path.join(dir, 'key.pem'), cert.key)
  writeFileSync(path.join(dir, 'ca.pem'), ca.cert)
  const file = path.join(dir, 'coquin.yaml')
  const good = parseConfig(file, [
    'proxies:',
    '  - name: s3',
    '    listen: 127.0.0.1:0',
    '    upstream: localhost:9000',
    '    tls:',
    '      listen: { cert: cert.pem, key: key.pem }',
    '      upstream: { ca: ca.pem }',
  ].join('\n'), builtins)
  t.same(good.proxies[0]!.tls, { listen: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') }, upstream: { ca: path.join(dir, 'ca.pem') } })
  const echo = await echoServer(t)
  const reg = await registry(t)
  const p = await reg.create({ ...good.proxies[0]!, upstream: `127.0.0.1:${echo.port}` })
  const c = await tlsConnect(t, p.port)
  t.ok(c.authorized, 'the files were read')

  const bad = () => parseConfig(file, [
    'proxies:',
    '  - name: s3',
    '    listen: 127.0.0.1:0',
    '    upstream: localhost:9000',
    '    tls:',
    '      listen: { cert: nope.pem, key: key.pem }',
    '      upstream: { insecure: maybe }',
  ].join('\n'), builtins)
  const err = (() => { try { bad() } catch (e) { return e as Error } })()
  t.match(err?.message, /coquin\.yaml:6:\d+: proxies\[0\]\.tls\.listen\.cert: cannot read .*nope\.pem: ENOENT/, 'the missing file, with its line')
  t.match(err?.message, /coquin\.yaml:7:\d+: proxies\[0\]\.tls\.upstream\.insecure: must be boolean/, 'the wrong type, with its line')
})

t.test('API-shaped specs: bad tls fields are 400s with a message, nothing is created', async t => {
  const reg = await registry(t)
  const bad: [unknown, RegExp][] = [
    ['yes', /tls must be an object/],
    [{ listen: { cert: 'x' } }, /needs both cert and key/],
    [{ listen: { cert: '/nonexistent/c.pem', key: '/nonexistent/k.pem' } }, /tls\.listen\.cert: \/nonexistent\/c\.pem is not a readable PEM file/],
    [{ listen: { cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: cert.key } }, /tls\.listen: bad certificate or key/],
    [{ upstream: { insecure: 'no' } }, /tls\.upstream\.insecure must be a boolean/],
    [{ upstream: { verify: true } }, /unknown field verify/],
    [{ listen: { handshake_timeout: 0 } }, /handshake_timeout must be an integer/],
    [{ middle: {} }, /unknown field middle/],
  ]
  for (const [tlsSpec, re] of bad) {
    await t.rejects(reg.create({ name: 'bad', listen: '127.0.0.1:0', upstream: '127.0.0.1:1', tls: tlsSpec }), { code: 'COQUIN_ERR_BAD_REQUEST', message: re }, JSON.stringify(tlsSpec))
  }
  t.equal(reg.proxies.size, 0, 'nothing was created')
})

t.test('selfSignedCertificate: names become SANs, the certificate verifies as its own CA', async t => {
  const c = await selfSignedCertificate(['coquin.test', '10.1.2.3'])
  const x = new (await import('node:crypto')).X509Certificate(c.cert)
  t.match(x.subjectAltName, /DNS:coquin\.test/)
  t.match(x.subjectAltName, /IP Address:10\.1\.2\.3/)
  t.ok(x.checkIssued(x), 'self-issued')
  t.match(c.fingerprint, /^[0-9A-F:]+$/i)
})

t.test('control API: a proxy with tls is created by POST /proxies, and GET /proxies/{name}/certificate serves what clients must trust', async t => {
  const echo = await echoServer(t)
  const api = await withApi(t)
  const created = await api.call('POST', '/proxies', { name: 'secure', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}`, tls: { listen: {} } })
  t.equal(created.status, 201, created.text)
  t.same((created.json as { tls: unknown }).tls, { listen: {} })
  const pem = await api.call('GET', '/proxies/secure/certificate')
  t.equal(pem.status, 200)
  t.equal(pem.headers.get('content-type'), 'application/x-pem-file')
  t.match(pem.text, /^-----BEGIN CERTIFICATE-----/)
  const c = await tlsConnect(t, portOf((created.json as { listen: string }).listen), { ca: pem.text })
  t.ok(c.authorized, 'a client that trusts the served certificate verifies coquin')
  c.destroy()

  const plain = await api.call('POST', '/proxies', { name: 'plain', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` })
  t.equal(plain.status, 201)
  const none = await api.call('GET', '/proxies/plain/certificate')
  t.equal(none.status, 404)
  t.match(none.json, { error: /does not terminate TLS/ })
  const bad = await api.call('POST', '/proxies', { name: 'bad', upstream: `127.0.0.1:${echo.port}`, tls: { listen: { cert: 'missing.pem', key: 'missing.pem' } } })
  t.equal(bad.status, 400)
  t.match(bad.json, { error: /tls\.listen\.cert: missing\.pem is not a readable PEM file/ })
})

t.test('typed client: create a TLS proxy and fetch the certificate to trust', async t => {
  const echo = await echoServer(t)
  const api = await withApi(t)
  const { Coquin } = await import('../src/client/index.js')
  const coquin = new Coquin(api.url)
  const p = await coquin.create({ name: 'typed', upstream: `127.0.0.1:${echo.port}`, tls: { listen: {} } })
  t.same(p.tls, { listen: {} })
  const pem = await p.certificate()
  const c = await tlsConnect(t, p.port, { ca: pem })
  c.end('typed')
  t.equal((await within(collect(c), 5000, 'echo')).data.toString(), 'typed')
})

t.test('curl: HTTPS through coquin terminating TLS with a `coquin cert` certificate', { skip: !hasCurl && 'curl not installed' }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-cert-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const made = await new Promise<{ code: number | null; out: string }>(resolve => {
    const child = spawn(process.execPath, [CLI, 'cert', '-o', dir, 'localhost', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.on('close', code => resolve({ code, out }))
  })
  t.equal(made.code, 0, made.out)
  t.match(made.out, /cert\.pem and key\.pem for localhost, 127\.0\.0\.1, 30 days/)
  const upstream = await listen(t, s => {
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello'))
  })
  const reg = await registry(t)
  const p = await reg.create({ name: 'curl', listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstream.port}`, protocol: 'http', tls: { listen: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') } } })
  const res = await new Promise<{ code: number | null; out: string }>(resolve => {
    const child = spawn('curl', ['-sS', '--cacert', path.join(dir, 'cert.pem'), `https://127.0.0.1:${p.port}/`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { out += d })
    child.on('close', code => resolve({ code, out }))
  })
  t.same(res, { code: 0, out: 'hello' }, 'curl verified the certificate and got the upstream\'s answer')
})

t.test('a certificate path that would block (a FIFO) or probe the server: a quick 400, the same words, the API keeps answering', async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-fifo-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fifo = path.join(dir, 'cert.fifo')
  const made = spawnSync('mkfifo', [fifo])
  const notPem = path.join(dir, 'notes.txt')
  writeFileSync(notPem, 'hello')
  const api = await withApi(t)
  const create = (cert: string) => api.call('POST', '/proxies', { name: 'x', upstream: '127.0.0.1:1', tls: { listen: { cert, key: cert } } })
  if (made.status === 0) {
    const pending = create(fifo)
    const health = await within(api.call('GET', '/healthz'), 2000, 'healthz while the FIFO is being read')
    t.equal(health.status, 200, 'the event loop is free while a FIFO path is looked at')
    const r = await within(pending, 2000, 'the answer for a FIFO path')
    t.equal(r.status, 400)
    t.match(r.json, { error: `tls.listen.cert: ${fifo} is not a readable PEM file (a regular file of at most 1 MiB)` })
  } else t.comment('mkfifo is not available: the FIFO case is skipped')
  const words = async (p: string) => ((await create(p)).json as { error: string }).error.replace(p, 'PATH')
  const missing = await words(path.join(dir, 'missing.pem'))
  t.equal(await words(notPem), missing, 'an existing file that is not PEM reads like a missing one')
  t.equal(await words(dir), missing, 'so does a directory')
  t.equal(api.registry.proxies.size, 0)
})
