// The journal (src/observe/journal.ts), GET /events, GET /proxies/{name}/links, `coquin events|links` and the
// client's assertion helpers — on real sockets, waiting on events (never on wall time).
import t, { type Test } from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setTimeout as delay } from 'node:timers/promises'
import { startCoquin } from '../src/server.js'
import { ManualClock } from '../src/core/clock.js'
import { Journal, type JournalEvent as ServerEvent, type JournalLink } from '../src/observe/journal.js'
import { nullObserver, observers } from '../src/observe/observer.js'
import type { Link } from '../src/datapath/link.js'
import type { Fault } from '../src/faults/fault.js'
import { formatEvent } from '../src/cli/commands.js'
import {
  Coquin, attempts, linksUsed, requestsFor, retryGaps, type DroppedNotice, type JournalEvent, type ProxyHandle,
} from '../src/client/index.js'
import { connect, echoServer, readBytes, until, within } from './helpers/net.js'
import { withApi } from './helpers/api.js'
import { runCli } from './helpers/cli.js'

type T = Test

const server = await startCoquin({ port: 0 })
t.teardown(() => server.close())
const coquin = new Coquin(server.url)
const echo = await echoServer(t)
const upstream = `127.0.0.1:${echo.port}`

let n = 0
async function echoProxy(t: T, toxics: Parameters<Coquin['proxy']>[0]['toxics'] = []): Promise<ProxyHandle> {
  const p = await coquin.proxy({ name: `journal-${++n}`, listen: '127.0.0.1:0', upstream, toxics })
  t.teardown(() => p.delete().catch(() => {}))
  return p
}

/** One echo round trip on a fresh connection, then a clean close. */
async function roundTrip(t: T, port: number, text = 'hello'): Promise<net.Socket> {
  const c = await connect(t, port)
  c.write(text)
  t.equal((await within(readBytes(c, text.length), 5000, 'echo')).toString(), text)
  const closed = once(c, 'close')
  c.end()
  await within(closed, 5000, 'close')
  return c
}

/** `name{k="v",...}` (labels sorted) → value, from Prometheus exposition text. */
function parseMetrics(body: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || line.startsWith('#')) continue
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(x => `${x[1]}="${x[2]}"`).sort()
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]))
  }
  return out
}
const metricKey = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.keys(labels).sort().map(k => `${k}="${labels[k]}"`).join(',')}}`

t.test('a retrying client against reset_peer: each attempt, its own link, the backoff gaps; metrics agree', async t => {
  const p = await echoProxy(t, [{ name: 'rst', type: 'reset_peer', stream: 'upstream', attributes: { timeout: 0 } }])
  const backoff = [50, 100, 200]

  /** The client under test: connect, send, and on a reset retry after backoff[i] — 3 retries. */
  const attempt = () => new Promise<string>(resolve => {
    const s = net.connect(p.port, '127.0.0.1', () => s.write('ping'))
    s.on('data', () => { s.destroy(); resolve('ok') })
    s.on('error', e => resolve((e as NodeJS.ErrnoException).code ?? 'error'))
    s.on('close', () => resolve('closed'))
  })
  const outcomes: string[] = []
  for (let i = 0; ; i++) {
    outcomes.push(await within(attempt(), 5000, `attempt ${i + 1}`))
    if (outcomes.at(-1) === 'ok' || i === backoff.length) break
    await delay(backoff[i]!)                       // the client's own backoff, not a wait in the test
  }
  t.same(outcomes, ['ECONNRESET', 'ECONNRESET', 'ECONNRESET', 'ECONNRESET'], 'every attempt was reset')

  const events = await p.waitForEvents({}, evs => evs.filter(e => e.type === 'link_close').length >= 4)
  const opens = events.filter(e => e.type === 'link_open')
  const closes = events.filter(e => e.type === 'link_close')
  const faults = events.filter(e => e.type === 'fault')
  t.equal(attempts(events).length, 4, 'the journal shows 4 attempts')
  t.equal(linksUsed(events), 4, 'each on a fresh link')
  t.equal(new Set(opens.map(e => e.link)).size, 4, 'distinct link ids')
  t.equal(new Set(opens.map(e => e.type === 'link_open' && e.client)).size, 4, 'from 4 client ports')
  for (const o of opens) {
    t.ok(faults.some(f => f.link === o.link && f.type === 'fault' && f.toxic === 'rst' && f.toxic_type === 'reset_peer'), `link ${o.link}: reset_peer applied`)
    const c = closes.find(e => e.link === o.link)
    t.match(c, { reason: 'reset_peer', bytes_upstream: 4, bytes_downstream: 0 }, `link ${o.link}: closed by reset_peer after 4 bytes`)
  }
  t.same(events.map(e => e.id), [...events.map(e => e.id)].sort((a, b) => a - b), 'ids in order')

  const gaps = retryGaps(events)
  t.equal(gaps.length, 3, 'three gaps for four attempts')
  for (const [i, gap] of gaps.entries()) {
    t.ok(gap >= backoff[i]! - 2 && gap <= backoff[i]! + 250, `gap ${i + 1}: ${gap} ms ≈ backoff ${backoff[i]} ms`)
  }
  t.ok(gaps[0]! < gaps[2]!, 'the backoff grows')

  const m = parseMetrics(await (await fetch(`${server.url}/metrics`)).text())
  const proxy = { proxy: p.name }
  t.equal(m.get(metricKey('coquin_links_opened_total', proxy)), opens.length, 'links opened: metrics = journal')
  t.equal(m.get(metricKey('coquin_links_closed_total', { ...proxy, reason: 'reset_peer' })), closes.length, 'links closed: metrics = journal')
  t.equal(m.get(metricKey('coquin_links_active', proxy)), opens.length - closes.length, 'active = opened - closed = 0')
  t.equal(m.get(metricKey('coquin_faults_applied_total', { ...proxy, toxic: 'rst', type: 'reset_peer' })), faults.length, 'faults: metrics = journal')
})

t.test('helpers on HTTP events: requests for a path, links used, gaps from response to next request', async t => {
  const ev = (id: number, time: number, link: number, path: string, latency = 10, request = 1): JournalEvent =>
    ({ id, time, type: 'http_request', proxy: 'api', link, method: 'GET', path, status: 503, source: 'coquin', latency_ms: latency, request })
  const events: JournalEvent[] = [
    { id: 1, time: 990, type: 'link_open', proxy: 'api', link: 7, client: '127.0.0.1:5000' },
    ev(2, 1_000, 7, '/orders'),
    ev(3, 1_005, 7, '/health', 1, 2),
    ev(4, 1_070, 7, '/orders', 10, 3),                 // same link: kept alive; started at 1060
    ev(5, 1_190, 8, '/orders', 20, 1),                 // fresh link; started at 1170
  ]
  const orders = requestsFor(events, '/orders')
  t.same(orders.map(e => e.id), [2, 4, 5])
  t.same(requestsFor(events, /^\/(orders|health)$/).map(e => e.id), [2, 3, 4, 5])
  t.equal(linksUsed(orders), 2, 'two links carried the /orders attempts')
  t.same(retryGaps(orders), [60, 100], 'end of one response to the start of the next request')
  t.equal(attempts(events).length, 4, 'HTTP events win over link_open')
  const tcp: JournalEvent[] = [
    { id: 1, time: 0, type: 'link_open', proxy: 'db', link: 1, client: 'a' },
    { id: 2, time: 3, type: 'link_close', proxy: 'db', link: 1, reason: 'reset', bytes_upstream: 0, bytes_downstream: 0, duration_ms: 3 },
    { id: 3, time: 53, type: 'link_open', proxy: 'db', link: 2, client: 'b' },
    { id: 4, time: 160, type: 'link_open', proxy: 'db', link: 3, client: 'c' },
  ]
  t.same(retryGaps(tcp), [50, 107], 'TCP: from a link\'s close (else its open) to the next open')
  t.same(retryGaps([]), [])
})

/** A stand-in for a Link: the journal reads only these fields. */
const fakeLink = (id: number): JournalLink => ({
  id, openedAt: Date.now(), bytesUpstream: 10, bytesDownstream: 20, client: { remoteAddress: '127.0.0.1', remotePort: 40000 + (id % 20000) },
})
const fault = { name: 'slow', type: 'latency', stream: 'downstream' as const }

t.test('the ring stays bounded under 100,000 events', async t => {
  const j = new Journal({ size: 1000 })
  for (let i = 1; i <= 33_334; i++) {
    const link = fakeLink(i)
    j.linkOpened('p', link)
    j.faultApplied('p', fault, link)
    j.linkClosed('p', link, 'client_close')
  }
  t.equal(j.lastId, 100_002, '100,002 events recorded')
  t.equal(j.size, 1000, 'the ring holds its size, no more')
  t.equal(j.oldestId, 99_003, 'the oldest were evicted')
  const all = j.query()
  t.equal(all.length, 1000)
  t.ok(all.every((e, i) => e.id === 99_003 + i), 'contiguous ids, oldest first')
  t.equal(j.query({ since: 5 }).length, 1000, 'since before the oldest: everything held')
  t.same(j.query({ since: 100_000 }).map(e => e.id), [100_001, 100_002])
  t.same(j.query({ limit: 2 }).map(e => e.id), [100_001, 100_002], 'limit alone: the most recent')
  t.same(j.query({ since: 99_500, limit: 2 }).map(e => e.id), [99_501, 99_502], 'since + limit: the first after')
  t.same(j.query({ type: 'fault', limit: 1 })[0], { id: 100_001, time: j.at(100_001)!.time, type: 'fault', proxy: 'p', link: 33_334, toxic: 'slow', toxic_type: 'latency', stream: 'downstream' })

  const big = new Journal()
  t.equal(big.capacity, 10_000, 'default size 10,000')
  const start = performance.now()
  for (let i = 0; i < 100_000; i++) big.linkOpened('p', fakeLink(i))
  t.equal(big.size, 10_000)
  t.ok(performance.now() - start < 5_000, 'cheap enough for the data path')
  t.throws(() => new Journal({ size: 0 }), TypeError)
})

t.test('http_request and HTTP fault events come through observers(), which skips observers without httpRequest', async t => {
  const j = new Journal()
  const fan = observers(nullObserver, j)
  const link = fakeLink(9) as unknown as Link
  fan.faultApplied('api', { name: 'boom', type: 'http_status', stream: 'downstream' } as Fault, link, 1)
  fan.httpRequest!('api', link, { index: 1, method: 'GET', path: '/orders', status: 503, source: 'coquin', latencyMs: 1.23456, faults: ['boom'] })
  fan.httpRequest!('api', link, { index: 2, method: 'POST', path: '/orders', status: 201, source: 'upstream', latencyMs: 7 })
  const [f, r1, r2] = j.query()
  t.match(f, { type: 'fault', proxy: 'api', link: 9, toxic: 'boom', toxic_type: 'http_status', request: 2 })
  t.match(r1, { type: 'http_request', link: 9, method: 'GET', path: '/orders', status: 503, source: 'coquin', latency_ms: 1.235, request: 2, faults: ['boom'] })
  t.notOk('faults' in r2!, 'no faults field when none acted')
  t.equal(r2?.type === 'http_request' && r2.request, 3, 'request: how many the link has carried, 1-based')
  t.same(requestsFor(j.query() as JournalEvent[], '/orders').map(e => e.status), [503, 201])

  const s = await startCoquin({ port: 0, journalSize: 3 })
  t.teardown(() => s.close())
  t.equal(s.journal.capacity, 3, 'StartOptions.journalSize')
})

t.test('a follower that reads slowly does not grow memory: capped backlog, dropped count reported', async t => {
  const journal = new Journal({ size: 5_000, followBacklog: 500 })
  const { url } = await withApi(t, { journal }, { observer: journal })
  const res = await within(new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`${url}/events?follow=1&type=link_open`, resolve).on('error', reject)), 5000, 'follow response')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/x-ndjson')
  res.pause()                                      // the slow reader: takes nothing for now
  await until(() => journal.followers.length === 1, 5000, 'subscribed')
  const sub = journal.followers[0]!

  // Events until the response's buffers are full and the follower has dropped some: bounded, in batches.
  let id = 0
  const batch = (k: number) => { for (let i = 0; i < k; i++) { const l = fakeLink(++id); journal.linkOpened('p', l); journal.linkClosed('p', l, 'client_close') } }
  // (The reader is in this process: its socket takes data until its own buffers are full, so wait
  // until the follower stays paused across a turn of the event loop.)
  for (let rounds = 0; !(sub.paused && sub.dropped > 0); rounds++) {
    if (rounds > 400) throw new Error(`no backpressure after ${id} links`)
    batch(5_000)
    for (let i = 0; i < 5; i++) await new Promise(r => setImmediate(r))
  }
  // Still in the same turn of the loop, so the follower cannot drain meanwhile: its backlog fills to the cap
  // (a drain between two rounds above may have left it part-full).
  batch(1_000)
  t.ok(sub.paused, 'the follower is paused: the response said write() === false')
  t.equal(sub.backlog, 500, 'its backlog is capped at followBacklog')
  const before = sub.dropped
  batch(20_000)
  t.equal(sub.backlog, 500, 'and stays capped as events keep coming')
  t.equal(sub.dropped - before, 20_000, 'every further matching event is dropped and counted')
  t.equal(journal.size, 5_000, 'the ring is bounded too')

  // Now read: the events written before the stall, a dropped notice, then the backlog, in id order.
  const items: (ServerEvent | DroppedNotice)[] = []
  let buffered = ''
  res.setEncoding('utf8')
  res.on('data', (s: string) => {
    buffered += s
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) { items.push(JSON.parse(buffered.slice(0, nl))); buffered = buffered.slice(nl + 1) }
  })
  res.resume()
  const last = journal.lastId - 1                    // the last link_open
  await until(() => items.some(i => i.type !== 'dropped' && i.id === last), 10_000, 'the backlog delivered')
  const notices = items.filter((i): i is DroppedNotice => i.type === 'dropped')
  t.ok(notices.length >= 1, 'a dropped notice came')
  t.equal(notices.reduce((a, d) => a + d.dropped, 0), sub.dropped, 'notices add up to the dropped count')
  const events = items.filter((i): i is ServerEvent => i.type !== 'dropped')
  t.ok(events.every(e => e.type === 'link_open'), 'the filter held')
  t.ok(events.every((e, i) => i === 0 || e.id > events[i - 1]!.id), 'ids strictly increase')
  t.equal(events.length + sub.dropped, id, 'every matching event was delivered or counted as dropped')
  const gap = notices[0]!
  t.ok(events.some(e => e.id === gap.after), 'the notice names the last event before the gap')

  res.destroy()                                      // the client goes away: the follower ends
  await until(() => journal.followers.length === 0, 5000, 'unsubscribed')
  t.ok(sub.closed)
})

t.test('GET /events filters by proxy, type, since and limit', async t => {
  const a = await echoProxy(t)
  const b = await echoProxy(t)
  await roundTrip(t, a.port)
  await roundTrip(t, a.port)
  await roundTrip(t, b.port)
  const closedOn = (p: ProxyHandle, k: number) => p.waitForEvents({ type: 'link_close' }, evs => evs.length >= k)
  await closedOn(a, 2)
  await closedOn(b, 1)

  const get = async (q: string) => {
    const res = await fetch(`${server.url}/events${q}`)
    return { status: res.status, headers: res.headers, json: await res.json() as any }
  }
  const allA = (await get(`?proxy=${a.name}`)).json as JournalEvent[]
  t.same(allA.map(e => e.type), ['link_open', 'link_close', 'link_open', 'link_close'])
  t.ok(allA.every(e => e.proxy === a.name && typeof e.time === 'number' && e.time > 1.6e12), 'time is epoch ms')
  t.match(allA[1], { type: 'link_close', reason: 'client_close', bytes_upstream: 5, bytes_downstream: 5, duration_ms: Number })
  t.match(allA[0], { type: 'link_open', client: /^127\.0\.0\.1:\d+$/ })

  t.same((await get(`?proxy=${a.name}&type=link_open`)).json.map((e: JournalEvent) => e.link), [allA[0]!.link, allA[2]!.link])
  const both = await get(`?proxy=${a.name},${b.name}&type=link_open,link_close`)
  t.equal(both.status, 200)
  t.equal(both.json.length, 6, 'comma-separated lists of proxies and types')
  t.same(await b.events(), (await get(`?proxy=${b.name}`)).json, 'proxy.events() = GET /events?proxy=')
  t.same((await get(`?proxy=${a.name}&since=${allA[1]!.id}`)).json, allA.slice(2), 'since: after that id')
  t.same((await get(`?proxy=${a.name}&limit=1`)).json, allA.slice(3), 'limit: the most recent')
  t.same((await get(`?proxy=${a.name}&since=${allA[0]!.id}&limit=2`)).json, allA.slice(1, 3), 'since + limit: the first after')
  t.same((await get(`?proxy=nope`)).json, [])
  t.same(await coquin.events({ proxy: a.name, type: 'link_close', limit: 1 }), [allA[3]], 'coquin.events(filter)')
  const h = (await get('')).headers
  t.equal(Number(h.get('x-coquin-journal-last')), server.journal.lastId)
  t.ok(Number(h.get('x-coquin-journal-oldest')) >= 1)

  for (const q of ['?type=nope', '?since=-1', '?limit=abc', '?since=1.5']) {
    const r = await get(q)
    t.equal(r.status, 400, q)
    t.equal(r.json.code, 'COQUIN_ERR_BAD_REQUEST', `${q}: ${r.json.error}`)
  }

  // Following with since replays what is held, then ends after limit.
  const followed: (JournalEvent | DroppedNotice)[] = []
  for await (const e of a.follow({ since: 0, limit: 3 })) followed.push(e)
  t.same(followed, allA.slice(0, 3), 'follow since=0 limit=3: the first three, then the stream ends')

  // Live: a follower sees a new link as it opens.
  const ac = new AbortController()
  const live = (async () => { for await (const e of b.follow({ type: 'link_open' }, { signal: ac.signal })) return e })()
  await until(() => server.journal.followers.length > 0, 5000, 'subscribed')
  await roundTrip(t, b.port)
  const seen = await within(live, 5000, 'a live event')
  ac.abort()
  t.match(seen, { type: 'link_open', proxy: b.name })
  await until(() => server.journal.followers.length === 0, 5000, 'the follower left')
})

t.test('GET /proxies/{name}/links: open links with client, bytes, idle_ms and toxics', async t => {
  const clock = new ManualClock()
  const s = await startCoquin({ port: 0, clock })
  t.teardown(() => s.close())
  const client = new Coquin(s.url)
  const p = await client.proxy({ name: 'linked', upstream, toxics: [{ name: 'quiet', type: 'noop', stream: 'both' }] })
  t.same(await p.links(), [], 'no links yet')

  const before = Date.now()
  const c = await connect(t, p.port)
  c.write('hello')
  t.equal((await within(readBytes(c, 5), 5000, 'echo')).toString(), 'hello')
  clock.advance(250)
  await p.addFault({ name: 'later', type: 'latency', attributes: { latency: 0 } })
  const [open] = await p.events({ type: 'link_open' })
  const links = await p.links()
  t.equal(links.length, 1)
  t.match(links[0], {
    id: open!.link, client: `127.0.0.1:${c.localPort}`, idle_ms: 250, bytes_upstream: 5, bytes_downstream: 5,
    toxics: ['quiet', 'later'], state: 'open',
  })
  t.ok(links[0]!.opened_at >= before - 1 && links[0]!.opened_at <= Date.now(), 'opened_at is epoch ms')

  const r = await fetch(`${s.url}/proxies/nope/links`)
  t.equal(r.status, 404)
  t.equal(((await r.json()) as { code: string }).code, 'COQUIN_ERR_PROXY_NOT_FOUND')

  c.end()
  await p.waitForEvents({ type: 'link_close' }, evs => evs.length === 1)
  t.same(await p.links(), [], 'gone once closed')
})

// CLI ------------------------------------------------------------------------------------------------

interface Run { code: number | null; stdout: string; stderr: string }

const inProcess = runCli

t.test('coquin events and coquin links', async t => {
  const env = { COQUIN_URL: server.url }
  const p = await echoProxy(t, [{ name: 'nothing', type: 'noop' }])
  await roundTrip(t, p.port)
  const events = await p.waitForEvents({}, evs => evs.some(e => e.type === 'link_close'))

  let r = await inProcess(['events', '--proxy', p.name, '--json'], env)
  t.equal(r.code, 0, r.stderr)
  t.same(JSON.parse(r.stdout), events, '--json: the server\'s array')

  r = await inProcess(['events', '--proxy', p.name], env)
  t.equal(r.stdout, events.map(e => formatEvent(e) + '\n').join(''), 'one line per event')
  t.match(r.stdout, new RegExp(`^\\d+ \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ${p.name} link=\\d+ link_open client=127\\.0\\.0\\.1:\\d+\\n`))
  t.match(r.stdout, /link=\d+ fault toxic=nothing type=noop stream=downstream\n/)
  t.match(r.stdout, /link_close reason=client_close up=5 down=5 ms=[\d.]+\n$/)

  r = await inProcess(['events', '--proxy', p.name, '--type', 'link_open', '--limit', '1'], env)
  t.equal(r.stdout.split('\n').filter(Boolean).length, 1, '--type, --limit')

  r = await inProcess(['events', '-f', '--proxy', p.name, '--since', '0', '--limit', '2', '--json'], env)
  t.equal(r.code, 0, r.stderr)
  t.same(r.stdout.trim().split('\n').map(l => JSON.parse(l)), events.slice(0, 2), '-f --json: NDJSON, ended by --limit')

  r = await inProcess(['events', '--type', 'nope'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, /^coquin: type must be one of link_open, link_close, fault, fault_acted, http_request, http_fallback, redis_command, pg_query, protocol_fallback: nope\n$/)

  const c = await connect(t, p.port)
  c.write('abc')
  await within(readBytes(c, 3), 5000, 'echo')
  r = await inProcess(['links', p.name], env)
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^ID +CLIENT +OPENED +IDLE_MS +UP +DOWN +TOXICS\n/)
  t.match(r.stdout, new RegExp(`\\n\\d+ +127\\.0\\.0\\.1:${c.localPort} +\\S+Z +\\d+ +3 +3 +nothing\\n$`))
  r = await inProcess(['links', p.name, '--json'], env)
  t.match(JSON.parse(r.stdout), [{ client: `127.0.0.1:${c.localPort}`, bytes_upstream: 3, toxics: ['nothing'] }])
  c.destroy()
  await p.waitForEvents({ type: 'link_close' }, evs => evs.length === 2)
  r = await inProcess(['links', p.name], env)
  t.equal(r.stdout, `no open links on ${p.name}\n`)
  r = await inProcess(['links', 'missing'], env)
  t.equal(r.code, 1)
  t.equal(r.stderr, 'coquin: proxy not found: no proxy named "missing"\n')
})

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))
t.test('`coquin events -f` prints events as they come until Ctrl-C', { skip: !existsSync(CLI) && `${CLI} is missing: build first (npm test runs tsc)` }, async t => {
  const p = await echoProxy(t)
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
    k !== 'NODE_OPTIONS' && !k.startsWith('COQUIN_') && !k.startsWith('TAP') && !k.startsWith('_TAPJS')))
  const child = spawn(process.execPath, [CLI, 'events', '-f', '--proxy', p.name], { env: { ...env, COQUIN_URL: server.url } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const exited = once(child, 'exit')
  await until(() => server.journal.followers.some(f => !f.closed), 10_000, 'the CLI to follow')
  await roundTrip(t, p.port)
  await until(() => stdout.includes(' link_close '), 10_000, 'the CLI to print the close')
  t.match(stdout, new RegExp(`^\\d+ \\S+Z ${p.name} link=\\d+ link_open client=127\\.0\\.0\\.1:\\d+\\n\\d+ .* link_close reason=client_close up=5 down=5 `))
  child.kill('SIGINT')
  const [code, signal] = await within(exited, 10_000, 'exit')
  t.ok(code === 130 || signal === 'SIGINT', `stopped by Ctrl-C (code ${code}, signal ${signal})`)
  t.equal(stderr, '')
})
