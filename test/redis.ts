// Redis mode end to end: a real redis-server (Debian's, started here on a free loopback port) behind a
// `protocol: redis` proxy, real clients (ioredis, redis-cli, and raw sockets for byte-exact checks).
import t, { type Test } from 'tap'
import net from 'node:net'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { once } from 'node:events'
import { Redis, type RedisOptions } from 'ioredis'
import { startCoquin } from '../src/index.js'
import { Coquin, type JournalEvent, type ProxyHandle, type RedisCommandEvent } from '../src/client/index.js'
import { findExecutable, redisServer, redisSkip } from './helpers/servers.js'
import { readBytes, within } from './helpers/net.js'

const REDIS_CLI = findExecutable('redis-cli')
const exec = promisify(execFile)

async function setup(t: Test, extra: readonly string[] = []) {
  const { port } = await redisServer(t, extra)
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const coquin = new Coquin(server.url)
  const proxy = await coquin.create({ name: 'cache', listen: '127.0.0.1:0', upstream: `127.0.0.1:${port}`, protocol: 'redis' })
  const clients: Redis[] = []
  const client = (opts: RedisOptions = {}) => {
    const r = new Redis({ host: '127.0.0.1', port: proxy.port, lazyConnect: true, maxRetriesPerRequest: 0, ...opts })
    r.on('error', () => {})
    clients.push(r)
    return r
  }
  t.teardown(() => { for (const r of clients) r.disconnect() })
  const direct = new Redis({ host: '127.0.0.1', port })
  t.teardown(() => direct.disconnect())
  return { server, coquin, proxy, client, direct, redisPort: port }
}

/** A raw socket to the proxy, and a reader of exactly n bytes. */
async function raw(t: Test, port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1')
  t.teardown(() => s.destroy())
  await once(s, 'connect')
  return s
}

const cmd = (...args: string[]) => `*${args.length}\r\n${args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`
const commands = (events: JournalEvent[]) => events.filter((e): e is RedisCommandEvent => e.type === 'redis_command')

t.test('redis mode', { skip: redisSkip }, async t => {
  t.test('redis_error on GET user:* answers LOADING to ioredis; other keys and SET pass', async t => {
    const { proxy, client, direct } = await setup(t)
    const r = client()
    await r.connect()
    await r.set('user:1', 'alice')
    await r.set('session:1', 'token')
    await proxy.addFault({ name: 'loading', type: 'redis_error', attributes: { match: { command: 'GET', key: 'user:*' } } })
    await t.rejects(r.get('user:1'), { message: 'LOADING Redis is loading the dataset in memory' }, 'GET user:1 gets LOADING')
    t.equal(await r.get('session:1'), 'token', 'GET of another key passes')
    t.equal(await r.set('user:2', 'bob'), 'OK', 'SET of a matching key passes (only GET matches)')
    t.equal(await direct.get('user:2'), 'bob', 'and reached Redis')
    t.equal(await r.get('nothing'), null, 'the connection carries on in step')
    await proxy.updateFault('loading', { attributes: { match: { command: ['get', 'mget'], key: 'user:*' }, error: 'READONLY You can\'t write against a read only replica.' } })
    await t.rejects(r.mget('user:1', 'user:2'), { message: /^READONLY / }, 'a list of commands, any case, and another error')
  })

  t.test('redis-cli sees the error too', { skip: REDIS_CLI ? false : 'redis-cli not installed' }, async t => {
    const { proxy, direct } = await setup(t)
    await direct.set('user:7', 'x')
    await proxy.addFault({ name: 'loading', type: 'redis_error', attributes: { match: { key: 'user:*' } } })
    const got = await exec(REDIS_CLI!, ['-h', '127.0.0.1', '-p', String(proxy.port), 'GET', 'user:7'], { timeout: 10_000 })
    t.match(got.stdout, /LOADING Redis is loading the dataset in memory/, 'redis-cli prints the error')
    const ok = await exec(REDIS_CLI!, ['-h', '127.0.0.1', '-p', String(proxy.port), 'PING'], { timeout: 10_000 })
    t.equal(ok.stdout.trim(), 'PONG', 'a command without a key passes')
  })

  t.test('a 1,000-command pipeline with some failed: every other reply stays paired, byte for byte', async t => {
    const { proxy, direct } = await setup(t)
    await proxy.addFault({ name: 'half', type: 'redis_error', attributes: { match: { command: 'GET', key: 'fail:*' }, error: 'TRYAGAIN later' } })
    let out = ''
    let expected = ''
    for (let i = 0; i < 500; i++) {
      const value = `v${i}-${'x'.repeat(i % 50)}`
      const key = i % 7 === 0 ? `fail:${i}` : `ok:${i}`
      out += cmd('SET', key, value) + cmd('GET', key)
      expected += `+OK\r\n` + (i % 7 === 0 ? '-TRYAGAIN later\r\n' : `$${value.length}\r\n${value}\r\n`)
    }
    const s = await raw(t, proxy.port)
    const bytes = Buffer.from(out)
    const reply = readBytes(s, Buffer.byteLength(expected))
    // in pieces of random sizes, so that commands and replies straddle chunks
    let at = 0
    while (at < bytes.length) {
      const n = 1 + Math.floor(Math.random() * 300)
      s.write(bytes.subarray(at, at + n))
      at += n
    }
    t.equal((await within(reply, 10_000, 'the replies')).toString(), expected, 'every reply, in order, exactly')
    t.equal(await direct.get('fail:7'), 'v7-xxxxxxx', 'the failed GETs never reached Redis, the SETs did')
  })

  t.test('inline commands (as nc sends) are framed too', async t => {
    const { proxy } = await setup(t)
    await proxy.addFault({ name: 'e', type: 'redis_error', attributes: { match: { command: 'get' }, error: 'ERR inline' } })
    const s = await raw(t, proxy.port)
    s.write('PING\r\nGET a\r\nECHO hi\n')
    t.equal((await within(readBytes(s, 7 + 13 + 8), 5000)).toString(), '+PONG\r\n-ERR inline\r\n$2\r\nhi\r\n')
  })

  t.test('MULTI/EXEC and SUBSCRIBE/PUBLISH pass; a failed command inside MULTI is answered in place of QUEUED', async t => {
    const { proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    await proxy.addFault({ name: 'e', type: 'redis_error', attributes: { match: { command: 'INCR', key: 'bad' } } })
    const res = await r.multi().set('a', '1').incr('a').get('a').exec()
    t.same(res, [[null, 'OK'], [null, 2], [null, '2']], 'a transaction passes whole')
    const res2 = await r.multi().incr('a').incr('bad').exec()
    t.same(res2, [[null, 3]], 'the failed INCR got LOADING instead of QUEUED and never reached Redis: EXEC ran the other one only')

    const sub = client()
    await sub.connect()
    const pub = client()
    await pub.connect()
    await sub.subscribe('news')
    const got = once(sub, 'message')
    t.equal(await pub.publish('news', 'hello'), 1, 'one subscriber')
    t.same(await within(got, 5000, 'the message'), ['news', 'hello'], 'the message reaches the subscriber')
    t.equal(await pub.get('a'), '3', 'the publisher\'s connection is still paired')
  })

  t.test('RESP3: HELLO 3, maps, sets, doubles, big numbers, verbatim strings, attributes and pushes pass', async t => {
    const { proxy } = await setup(t, ['--enable-debug-command', 'yes'])
    await proxy.addFault({ name: 'e', type: 'redis_error', attributes: { match: { command: 'GET', key: 'x' }, error: 'ERR faulted' } })
    const s = await raw(t, proxy.port)
    const data: Buffer[] = []
    s.on('data', c => data.push(c))
    const seen = () => Buffer.concat(data).toString('latin1')
    const wait = async (what: string, ok: (s: string) => boolean) => {
      const start = Date.now()
      while (!ok(seen())) {
        if (Date.now() - start > 5000) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(seen())}`)
        await once(s, 'data')
      }
    }
    s.write(cmd('HELLO', '3'))
    await wait('HELLO', x => x.includes('proto'))
    data.length = 0
    const probes = ['map', 'set', 'double', 'bignum', 'verbatim', 'attrib', 'true', 'null']
    s.write(probes.map(p => cmd('DEBUG', 'PROTOCOL', p)).join('') + cmd('GET', 'x') + cmd('PING'))
    await wait('the replies', x => x.endsWith('-ERR faulted\r\n+PONG\r\n'))
    const text = seen()
    for (const [type, marker] of [['map', '%'], ['set', '~'], ['double', ','], ['bignum', '('], ['verbatim', '='], ['attrib', '|'], ['true', '#t'], ['null', '_']]) {
      t.ok(text.includes(`\r\n${marker}`) || text.startsWith(marker!), `${type} reply passes`)
    }
    t.ok(text.endsWith('-ERR faulted\r\n+PONG\r\n'), 'the command after them is answered in its turn')
    data.length = 0
    s.write(cmd('SUBSCRIBE', 'c') + cmd('PING'))
    await wait('the push', x => x.includes('>3\r\n$9\r\nsubscribe'))
    t.pass('a RESP3 push passes')
  })

  t.test('SELECT is tracked: match.db', async t => {
    const { proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    await proxy.addFault({ name: 'db1', type: 'redis_error', attributes: { match: { db: 1 }, error: 'ERR db1' } })
    await r.set('k', 'v')
    t.equal(await r.get('k'), 'v', 'db 0 passes')
    await r.select(1)
    await t.rejects(r.get('k'), { message: 'ERR db1' }, 'after SELECT 1 the fault matches')
  })

  t.test('redis_delay: command and reply phases, measured', async t => {
    const { proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    const time = async (fn: () => Promise<unknown>) => { const t0 = performance.now(); await fn(); return performance.now() - t0 }
    const base = await time(() => r.get('k'))
    await proxy.addFault({ name: 'slow', type: 'redis_delay', attributes: { match: { command: 'GET' }, delay: 200 } })
    const slow = await time(() => r.get('k'))
    const other = await time(() => r.set('k', 'v'))
    t.ok(slow >= 195 && slow < 195 + 400, `GET waits 200 ms before going upstream (${slow.toFixed(1)} ms; ${base.toFixed(1)} without)`)
    t.ok(other < 150, `SET does not wait (${other.toFixed(1)} ms)`)
    await proxy.updateFault('slow', { attributes: { match: { command: 'GET' }, delay: 200, phase: 'reply' } })
    const slowReply = await time(() => r.get('k'))
    t.ok(slowReply >= 195 && slowReply < 195 + 400, `in the reply phase too (${slowReply.toFixed(1)} ms)`)
  })

  t.test('redis_abort: hang on BLPOP leaves the connection open and unanswered; rst and fin break it', async t => {
    const { coquin, proxy, client } = await setup(t)
    await proxy.addFault({ name: 'stuck', type: 'redis_abort', attributes: { match: { command: 'BLPOP' }, mode: 'hang' } })
    const r = client({ commandTimeout: 300 })
    await r.connect()
    await t.rejects(r.blpop('q', 0), { message: 'Command timed out' }, 'BLPOP 0 is never answered: only the client\'s own timeout ends it')
    const links = await proxy.links()
    t.equal(links.length, 1, 'the connection is still open')
    t.equal(links[0]!.state, 'silenced', 'and silenced (a stuck server)')
    const acted = await coquin.events({ type: 'fault_acted' })
    t.match(acted, [{ fault: 'stuck', action: 'silenced' }], 'the hang is recorded')

    await proxy.updateFault('stuck', { attributes: { match: { command: 'BLPOP' }, mode: 'rst' } })
    const r2 = client()
    await r2.connect()
    await t.rejects(r2.blpop('q', 0), 'rst: the command fails')
    await proxy.updateFault('stuck', { attributes: { match: { command: 'BLPOP' }, mode: 'fin' } })
    const r3 = client()
    await r3.connect()
    await t.rejects(r3.blpop('q', 0), 'fin: the command fails')
    const closed = await proxy.waitForEvents({ type: 'link_close' }, e => e.length >= 2)
    t.same(closed.map(e => e.type === 'link_close' && e.reason).sort(), ['redis_abort: fin', 'redis_abort: rst'], 'each link closed as the mode says')
  })

  t.test('toxicity, after and count count matching commands', async t => {
    const { proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    await proxy.addFault({ name: 'some', type: 'redis_error', attributes: { match: { command: 'INCR' }, after: 2, count: 3 } })
    const outcomes: string[] = []
    for (let i = 0; i < 8; i++) outcomes.push(await r.incr('n').then(() => 'ok', (e: Error) => e.message.split(' ')[0]!))
    t.same(outcomes, ['ok', 'ok', 'LOADING', 'LOADING', 'LOADING', 'ok', 'ok', 'ok'], 'skips 2 matching commands, fails 3, then passes')
    await proxy.removeFault('some')
    await proxy.addFault({ name: 'half', type: 'redis_error', toxicity: 0.5, attributes: { match: { command: 'INCR' } } })
    let failed = 0
    for (let i = 0; i < 200; i++) failed += await r.incr('m').then(() => 0, () => 1)
    t.ok(failed > 60 && failed < 140, `toxicity 0.5 fails about half of 200 (${failed})`)
  })

  t.test('the journal and metrics: redis_command events and coquin_redis_commands_total', async t => {
    const { server, proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    await proxy.addFault({ name: 'ro', type: 'redis_error', attributes: { match: { command: 'SET', key: 'ro:*' }, error: 'READONLY replica' } })
    await r.set('rw:1', 'a')
    await t.rejects(r.set('ro:1', 'a'))
    const events = commands(await proxy.waitForEvents({ type: 'redis_command' }, e => commands(e).some(c => c.key === 'ro:1')))
    t.match(events.find(e => e.key === 'rw:1'), { command: 'SET', db: 0, outcome: 'ok', source: 'upstream' })
    t.match(events.find(e => e.key === 'ro:1'), { command: 'SET', outcome: 'READONLY', source: 'coquin', faults: ['ro'] })
    const text = await fetch(`${server.url}/metrics`).then(res => res.text())
    t.match(text, /coquin_redis_commands_total\{proxy="cache",outcome="READONLY",source="coquin"\} 1/)
    t.match(text, /coquin_redis_commands_total\{proxy="cache",outcome="ok",source="upstream"\} \d+/)
  })

  t.test('a 4 MiB value passes byte-exact, and the command is decided before its value arrives', async t => {
    const { proxy, client, direct } = await setup(t)
    await proxy.addFault({ name: 'e', type: 'redis_error', attributes: { match: { command: 'SET', key: 'big:no' } } })
    const r = client()
    await r.connect()
    const value = Buffer.alloc(4 << 20)
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff
    t.equal(await r.set('big:yes', value), 'OK')
    t.same(await direct.getBuffer('big:yes'), value, 'the value arrived byte for byte')
    t.same(await r.getBuffer('big:yes'), value, 'and comes back byte for byte')
    await t.rejects(r.set('big:no', value), /LOADING/, 'a big command answered by coquin is swallowed whole')
    t.equal(await r.get('small'), null, 'and the connection carries on')
  })

  t.test('TCP faults still apply to a redis proxy, after the protocol layer; links close cleanly', async t => {
    const { proxy, client } = await setup(t)
    const r = client()
    await r.connect()
    await proxy.addFault({ name: 'slow', type: 'latency', stream: 'downstream', attributes: { latency: 150 } })
    const t0 = performance.now()
    await r.get('k')
    const took = performance.now() - t0
    t.ok(took >= 145, `a latency fault delays the reply (${took.toFixed(1)} ms)`)
    await proxy.addFault({ name: 'e', type: 'redis_error', attributes: { match: { command: 'GET' } } })
    const t1 = performance.now()
    await t.rejects(r.get('k'), /LOADING/)
    t.ok(performance.now() - t1 >= 145, 'coquin\'s own answer goes through the TCP fault too')
    r.disconnect()
    const closed = await proxy.waitForEvents({ type: 'link_close' }, e => e.length > 0)
    t.match(closed, [{ reason: 'client_close' }], 'the link closed when the client left')
    t.same(await proxy.links(), [], 'and no link is left')
  })

  t.test('what is not RESP falls back to TCP, recorded once', async t => {
    const { proxy } = await setup(t)
    const s = await raw(t, proxy.port)
    s.write(cmd('PING') + '*x\r\n')
    const events = await proxy.waitForEvents({ type: 'protocol_fallback' }, e => e.length > 0)
    t.match(events, [{ type: 'protocol_fallback', protocol: 'redis', stream: 'upstream', detail: 'a bad array length in a command' }])
  })
})
