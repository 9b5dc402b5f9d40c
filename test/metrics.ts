import t from 'tap'
import { once } from 'node:events'
import { Registry as PromRegistry } from 'prom-client'
import { collect, connect, echoServer, listen, proxyTo, readBytes, sendRandom, until, within } from './helpers/net.js'
import { createMetrics, type Metrics } from '../src/observe/metrics.js'
import type { Link } from '../src/datapath/link.js'
import type { Registry } from '../src/control/registry.js'
import type { FaultSpec } from '../src/faults/fault.js'
import type { Proxy } from '../src/datapath/proxy.js'

type Samples = Map<string, number>

/** Parses exposition text into `name{k="v",...}` (labels sorted) → value. */
function parse(body: string): Samples {
  const out: Samples = new Map()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`unparsable line: ${line}`)
    out.set(key(m[1]!, labelsOf(m[2] ?? '')), Number(m[3]))
  }
  return out
}

function labelsOf(s: string): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const m of s.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!
  return labels
}

function key(name: string, labels: Record<string, string>): string {
  const ls = Object.keys(labels).sort().map(k => `${k}="${labels[k]}"`).join(',')
  return `${name}{${ls}}`
}

async function scrape(m: Metrics): Promise<Samples> {
  const { contentType, body } = await m.text()
  if (!contentType.startsWith('text/plain')) throw new Error(`content type ${contentType}`)
  return parse(body)
}

const get = (s: Samples, name: string, labels: Record<string, string>) => s.get(key(name, labels))

/** Metrics reading the proxies of a Registry made after them (the observer has to exist first). */
function lateMetrics(opts: { process?: boolean } = {}) {
  let reg: Registry | undefined
  const m = createMetrics({ coquin: () => reg?.proxies.values() ?? [], ...opts })
  return { m, bind: (r: Registry) => { reg = r } }
}

async function echoSetup(t: { teardown(fn: () => unknown): void }, toxics: FaultSpec[] = []) {
  const { m, bind } = lateMetrics()
  const echo = await echoServer(t)
  const { registry, proxy } = await proxyTo(t, echo.port, toxics, { observer: m.observer })
  bind(registry)
  const labels = { proxy: proxy.name, listener: proxy.address, upstream: `127.0.0.1:${echo.port}` }
  return { m, echo, registry, proxy, labels }
}

const BYTES = ['toxiproxy_proxy_received_bytes_total', 'toxiproxy_proxy_sent_bytes_total'] as const

t.test('byte counters match real traffic, while the link is open and after it closes', async t => {
  const { m, proxy, labels } = await echoSetup(t)
  const client = await connect(t, proxy.port)
  const N = (1 << 20) + 12345
  const back = readBytes(client, N)
  await sendRandom(client, N, { end: false })
  await within(back, 10_000, 'echo')

  const check = (s: Samples, when: string) => {
    for (const name of BYTES) {
      for (const direction of ['upstream', 'downstream']) {
        t.equal(get(s, name, { direction, ...labels }), N, `${name}{${direction}} ${when}`)
      }
    }
    t.equal(get(s, 'coquin_forwarded_bytes_total', { proxy: proxy.name, direction: 'upstream' }), N, `forwarded up ${when}`)
    t.equal(get(s, 'coquin_forwarded_bytes_total', { proxy: proxy.name, direction: 'downstream' }), N, `forwarded down ${when}`)
  }

  const open = await scrape(m)
  check(open, 'while open')
  t.equal(get(open, 'coquin_links_opened_total', { proxy: proxy.name }), 1)
  t.equal(get(open, 'coquin_links_active', { proxy: proxy.name }), 1)
  t.equal(get(open, 'coquin_upstream_connect_seconds_count', { proxy: proxy.name }), 1)
  t.equal(get(open, 'coquin_link_duration_seconds_count', { proxy: proxy.name }) ?? 0, 0)

  client.end()
  await within(once(client, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  const closed = await scrape(m)
  check(closed, 'after close')
  t.equal(get(closed, 'coquin_links_opened_total', { proxy: proxy.name }), 1)
  t.equal(get(closed, 'coquin_links_active', { proxy: proxy.name }), 0)
  t.equal(get(closed, 'coquin_links_closed_total', { proxy: proxy.name, reason: 'client_close' }), 1)
  t.equal(get(closed, 'coquin_link_duration_seconds_count', { proxy: proxy.name }), 1)
  t.equal(get(closed, 'coquin_bytes_dropped_total', { proxy: proxy.name, stream: 'upstream' }), 0)
})

t.test('counters never decrease across scrapes, traffic and link closes', async t => {
  const { m, proxy } = await echoSetup(t)
  const history: Samples[] = []
  const snap = async () => { history.push(await scrape(m)) }
  const clients = await Promise.all([1, 2, 3].map(() => connect(t, proxy.port)))
  await snap()
  let total = 0
  for (const [i, c] of clients.entries()) {
    const n = 100_000 * (i + 1)
    total += n
    const back = readBytes(c, n)
    await sendRandom(c, n, { end: false })
    await within(back, 10_000, 'echo')
    await snap()
  }
  // One closes cleanly, one is reset mid-stream (bytes in flight), one stays open.
  clients[0]!.end()
  await within(once(clients[0]!, 'close'), 5000, 'close')
  await until(() => proxy.connections === 2)
  await snap()
  clients[1]!.write(Buffer.alloc(256 * 1024))
  clients[1]!.resetAndDestroy()
  await until(() => proxy.connections === 1)
  await snap()
  clients[2]!.end()
  await within(once(clients[2]!, 'close'), 5000, 'close')
  await until(() => proxy.connections === 0)
  await snap()

  let checked = 0
  for (let i = 1; i < history.length; i++) {
    for (const [k, v] of history[i - 1]!) {
      if (!/_total\{|_count\{|_sum\{|_bucket\{/.test(k)) continue
      const now = history[i]!.get(k)
      if (now === undefined || now < v) t.fail(`${k} went from ${v} to ${now} at scrape ${i}`)
      checked++
    }
  }
  t.ok(checked > 50, `${checked} counter samples compared`)
  const last = history.at(-1)!
  const up = get(last, 'coquin_forwarded_bytes_total', { proxy: proxy.name, direction: 'upstream' })!
  t.ok(up >= total, `forwarded upstream ${up} covers the ${total} echoed bytes`)
  t.equal(get(last, 'coquin_links_opened_total', { proxy: proxy.name }), 3)
  t.equal(get(last, 'coquin_links_active', { proxy: proxy.name }), 0)
})

t.test('a latency fault hit is counted, and held bytes are received but not yet sent', async t => {
  const { m, proxy, labels } = await echoSetup(t, [{ type: 'latency', stream: 'upstream', attributes: { latency: 60_000 } }])
  const client = await connect(t, proxy.port)
  client.write(Buffer.alloc(1000))
  await until(() => [...proxy.links].some(l => l.bytesUpstream === 1000))
  const s = await scrape(m)
  t.equal(get(s, 'coquin_faults_applied_total', { proxy: proxy.name, toxic: 'latency_upstream', type: 'latency' }), 1)
  t.equal(get(s, 'toxiproxy_proxy_received_bytes_total', { direction: 'upstream', ...labels }), 1000)
  t.equal(get(s, 'toxiproxy_proxy_sent_bytes_total', { direction: 'upstream', ...labels }), 0, 'held by the fault')
  const done = collect(client)
  client.resetAndDestroy() // a FIN would be held by the fault like data: reset to end the link now
  await within(done, 5000, 'close')
  await until(() => proxy.connections === 0)
  const after = await scrape(m)
  t.equal(get(after, 'toxiproxy_proxy_received_bytes_total', { direction: 'upstream', ...labels }), 1000)
  t.equal(get(after, 'toxiproxy_proxy_sent_bytes_total', { direction: 'upstream', ...labels }), 0, 'never sent')
  t.equal(get(after, 'coquin_links_active', { proxy: proxy.name }), 0)
})

t.test('an unreachable upstream counts a connect error and its close reason', async t => {
  const dead = await listen(t, () => {})
  const port = dead.port
  await new Promise(r => dead.close(r))
  const { m, bind } = lateMetrics()
  const { registry, proxy } = await proxyTo(t, port, [], { observer: m.observer })
  bind(registry)
  for (let i = 0; i < 3; i++) {
    const client = await connect(t, proxy.port)
    await within(collect(client), 5000, 'close')
  }
  await until(() => proxy.connections === 0)
  const s = await scrape(m)
  t.equal(get(s, 'coquin_upstream_connect_errors_total', { proxy: proxy.name, code: 'ECONNREFUSED' }), 3)
  t.equal(get(s, 'coquin_links_closed_total', { proxy: proxy.name, reason: 'upstream_unreachable' }), 3)
  t.equal(get(s, 'coquin_links_opened_total', { proxy: proxy.name }), 3)
  t.equal(get(s, 'coquin_links_active', { proxy: proxy.name }), 0)
  t.equal(get(s, 'coquin_upstream_connect_seconds_count', { proxy: proxy.name }) ?? 0, 0)
})

t.test('label values are bounded: odd codes, reasons and streams become other', async t => {
  const p = { name: 'p', enabled: true, links: new Set(), address: '127.0.0.1:1', upstream: '127.0.0.1:2' } as unknown as Proxy
  const m = createMetrics({ coquin: () => [p] })
  const fake = { openedAt: Date.now(), bytesUpstream: 0, bytesDownstream: 0 } as unknown as Link
  m.observer.upstreamConnectError('p', 'connect ECONNREFUSED 127.0.0.1:1')
  m.observer.upstreamConnectError('p', 'EAI_AGAIN')
  m.observer.upstreamConnectError('p', 'ETIMEDOUT')
  m.observer.linkClosed('p', fake, 'Error: socket 10.0.0.1:5 hung up')
  for (let i = 0; i < 100; i++) m.observer.linkClosed('p', fake, `made_up_${i}`)
  m.observer.bytesDropped('p', 'sideways', 7)
  const s = await scrape(m)
  t.equal(get(s, 'coquin_upstream_connect_errors_total', { proxy: 'p', code: 'other' }), 1, 'a message is not a code')
  t.equal(get(s, 'coquin_upstream_connect_errors_total', { proxy: 'p', code: 'EAI_AGAIN' }), 1, 'a resolver code is')
  t.equal(get(s, 'coquin_upstream_connect_errors_total', { proxy: 'p', code: 'ETIMEDOUT' }), 1)
  const closed = [...s].filter(([k]) => k.startsWith('coquin_links_closed_total{'))
  const reasons = closed.map(([k]) => labelsOf(k.slice(k.indexOf('{') + 1, -1)).reason)
  t.ok(reasons.length <= 32, `${reasons.length} reasons kept`)
  t.ok(reasons.includes('other'))
  t.notOk(reasons.some(r => r?.includes(' ')), 'no message as a label')
  t.equal(closed.reduce((a, [, v]) => a + v, 0), 101, 'every close counted')
  t.equal(get(s, 'coquin_bytes_dropped_total', { proxy: 'p', stream: 'other' }), 7)
})

t.test('a deleted proxy leaves the exposition once its links have closed', async t => {
  const { m, registry, proxy } = await echoSetup(t)
  const client = await connect(t, proxy.port)
  client.write('x')
  await readBytes(client, 1)
  t.ok((await m.text()).body.includes(`proxy="${proxy.name}"`))
  const done = collect(client)
  await registry.delete(proxy.name)
  await within(done, 5000, 'close')
  const { body } = await m.text()
  t.notOk(body.includes(`proxy="${proxy.name}"`), 'no series left for it')
})

t.test('metric names follow Prometheus conventions', async t => {
  const { m, proxy } = await echoSetup(t, [{ type: 'latency', attributes: { latency: 1 } }])
  const client = await connect(t, proxy.port)
  client.write('hello')
  await readBytes(client, 5)
  // Everything ours gets one sample at least.
  m.observer.upstreamConnectError(proxy.name, 'ECONNREFUSED')
  m.observer.bytesDropped(proxy.name, 'upstream', 1)
  m.observer.bytesCorrupted(proxy.name, 'downstream', 1)
  m.observer.tlsHandshakeFailed!(proxy.name, 'client', 'ERR_SSL_WRONG_VERSION_NUMBER')
  m.observer.connectionShed!(proxy.name)
  const ours = parseFamilies((await m.text()).body)
  t.same([...ours.keys()].sort(), [
    'coquin_bytes_corrupted_total', 'coquin_bytes_dropped_total', 'coquin_connections_shed_total', 'coquin_fault_actions_total', 'coquin_faults_applied_total',
    'coquin_forwarded_bytes_total', 'coquin_http_fallbacks_total', 'coquin_http_responses_total', 'coquin_link_duration_seconds', 'coquin_links_active',
    'coquin_links_closed_total', 'coquin_links_opened_total', 'coquin_pg_queries_total', 'coquin_protocol_fallbacks_total', 'coquin_redis_commands_total',
    'coquin_tls_handshake_failures_total', 'coquin_upstream_connect_errors_total', 'coquin_upstream_connect_seconds', 'toxiproxy_proxy_received_bytes_total', 'toxiproxy_proxy_sent_bytes_total',
  ])
  for (const [name, f] of ours) {
    t.match(name, /^(coquin|toxiproxy)_[a-z][a-z0-9_]*[a-z0-9]$/, `${name}: prefixed snake_case`)
    t.ok(f.help.length > 0, `${name}: has HELP`)
    if (f.type === 'counter') t.match(name, /_total$/, `${name}: counter ends in _total`)
    else t.notMatch(name, /_total$/, `${name}: only counters end in _total`)
    if (f.type === 'histogram') t.match(name, /_seconds$/, `${name}: histogram in base units`)
    // Units are named in base units (the brief's coquin_bytes_{dropped,corrupted}_total put the unit first).
    if (/bytes/.test(name)) t.match(name, /(^|_)bytes_/, `${name}: bytes in base unit`)
    t.notMatch(name, /_(ms|milliseconds|kb|mb)(_|$)/, `${name}: base units only`)
    for (const l of f.labels) {
      t.match(l, /^[a-z][a-z0-9_]*$/, `${name}: label ${l}`)
      t.notOk(['id', 'link', 'client', 'address', 'error', 'message'].includes(l), `${name}: no unbounded label ${l}`)
    }
    for (const v of f.values.get('direction') ?? []) t.ok(v === 'upstream' || v === 'downstream', `${name}: direction ${v}`)
  }
  t.same(ours.get('toxiproxy_proxy_received_bytes_total')!.labels.sort(), ['direction', 'listener', 'proxy', 'upstream'])

  const { m: withProcess } = lateMetrics({ process: true })
  const all = parseFamilies((await withProcess.text()).body)
  t.ok(all.has('coquin_process_cpu_user_seconds_total'), 'process metrics, prefixed')
  for (const name of all.keys()) t.match(name, /^(coquin|toxiproxy)_[a-z][a-z0-9_]*$/, `${name}: prefixed`)
  const other = createMetrics({ coquin: () => [], register: new PromRegistry() })
  t.notOk(parseFamilies((await other.text()).body).has('coquin_process_cpu_user_seconds_total'), 'off by default')
})

interface Family { type: string; help: string; labels: string[]; values: Map<string, Set<string>> }

/** Families by name from exposition text, checking each sample belongs to a declared family. */
function parseFamilies(body: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const fam = (name: string) => {
    let f = families.get(name)
    if (!f) { f = { type: '', help: '', labels: [], values: new Map() }; families.set(name, f) }
    return f
  }
  for (const line of body.split('\n')) {
    let m: RegExpExecArray | null
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) fam(m[1]!).help = m[2]!
    else if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) fam(m[1]!).type = m[2]!
    else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line))) {
      const name = m[1]!
      const f = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''))
      if (!f) throw new Error(`sample of an undeclared family: ${line}`)
      for (const [k, v] of Object.entries(labelsOf(m[2] ?? ''))) {
        if (k === 'le') continue
        if (!f.labels.includes(k)) f.labels.push(k)
        let vs = f.values.get(k)
        if (!vs) { vs = new Set(); f.values.set(k, vs) }
        vs.add(v)
      }
    }
  }
  return families
}
