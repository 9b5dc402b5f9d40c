// The web dashboard in a real browser: Debian's Chromium, driven by puppeteer-core (no browser download),
// against a real coquin with real upstreams on loopback. Screenshots go to test/screenshots/.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { startCoquin } from '../src/index.js'
import { Coquin } from '../src/client/index.js'
import { findExecutable } from './helpers/servers.js'

const CHROMIUM = findExecutable('chromium') ?? findExecutable('chromium-browser')
const skip = CHROMIUM ? false : 'chromium not installed: apt-get install chromium'
const SHOTS = fileURLToPath(new URL('./screenshots/', import.meta.url))

async function httpServer(t: Test, handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return (server.address() as net.AddressInfo).port
}

async function browser(t: Test): Promise<Browser> {
  const b = await puppeteer.launch({
    executablePath: CHROMIUM!, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  })
  t.teardown(() => b.close())
  return b
}

async function setup(t: Test, opts: { token?: string } = {}) {
  const backend = await httpServer(t, (_req, res) => res.end('hello'))
  const server = await startCoquin({ port: 0, ...opts })
  t.teardown(() => server.close())
  const coquin = new Coquin(server.url, opts.token ? { token: opts.token } : {})
  const b = await browser(t)
  const page = await b.newPage()
  await page.setViewport({ width: 1400, height: 1000 })
  const errors: string[] = []
  page.on('pageerror', err => errors.push(String(err)))
  return { server, coquin, page, backend, errors }
}

/** A region (a proxy, Partitions, Timeline) by its accessible name. */
const region = (page: Page, name: string, timeout = 5000) => page.waitForSelector(`::-p-aria([name="${name}"][role="region"])`, { timeout })
const button = (page: Page, name: string, timeout = 5000) => page.waitForSelector(`::-p-aria([name="${name}"][role="button"])`, { timeout })

async function get(port: number): Promise<number> {
  const t0 = performance.now()
  await new Promise<void>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, res => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  return performance.now() - t0
}

t.test('the dashboard', { skip }, async t => {
  t.test('shows proxies as they are created, steers faults, proxies and partitions', async t => {
    const { server, coquin, page, backend, errors } = await setup(t)
    const web = await coquin.create({ name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend}` })
    await page.goto(`${server.url}/ui`)
    await region(page, 'web')
    t.pass('the proxy created before the page loaded is shown')

    const cache = await coquin.create({ name: 'cache', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend}`, protocol: 'redis' })
    await region(page, 'cache')
    t.pass('a proxy created through the API appears without a reload')
    await cache.addFault({ name: 'ro', type: 'redis_error', attributes: { error: 'READONLY replica' } })
    await button(page, 'Remove ro')
    t.pass('so does a fault added through the API')
    const cacheRegion = await region(page, 'cache')
    const options = await cacheRegion!.$$eval('select[aria-label="Fault type"] option', os => os.map(o => (o as unknown as { value: string }).value))
    t.ok(options.includes('redis_error') && !options.includes('http_status') && !options.includes('pg_error'),
      'the form offers the faults that fit the proxy\'s protocol')

    // Add a latency fault through the generated form, and measure it.
    const addForm = 'form[aria-label="Add a fault to web"]'
    await page.waitForSelector(addForm)
    await page.select(`${addForm} select[aria-label="Fault type"]`, 'latency')
    await page.$eval(`${addForm} #attr-latency`, el => { (el as unknown as { value: string }).value = '' })
    await page.type(`${addForm} #attr-latency`, '300')
    await page.type(`${addForm} input[aria-label="Fault name"]`, 'slow')
    await (await button(page, 'Add fault to web'))!.click()
    const fault = await waitFor(async () => (await web.faults()).find(f => f.name === 'slow'), 'the fault to be added')
    t.match(fault, { type: 'latency', stream: 'downstream', attributes: { latency: 300 } }, 'the form\'s fault is on the proxy')
    const took = await get(web.port)
    t.ok(took >= 290, `and a request through the proxy takes its 300 ms (${took.toFixed(0)} ms)`)
    await button(page, 'Remove slow')
    await page.screenshot({ path: `${SHOTS}dashboard.png`, fullPage: true })

    // Toxicity, edited in place.
    const tox = await page.waitForSelector('::-p-aria([name="Toxicity of slow"])')
    await tox!.click({ count: 3 })
    await tox!.type('0.5')
    await page.keyboard.press('Tab')
    await waitFor(async () => (await web.fault('slow')).toxicity === 0.5, 'the toxicity to change')
    t.pass('toxicity edited in the table reaches the proxy')

    await (await button(page, 'Remove slow'))!.click()
    await waitFor(async () => (await web.faults()).length === 0, 'the fault to be removed')
    t.pass('Remove slow removes it')

    await (await button(page, 'Disable web'))!.click()
    await waitFor(async () => !(await web.refresh()).enabled, 'the proxy to be disabled')
    await (await button(page, 'Enable web', 5000))!.click()
    await waitFor(async () => (await web.refresh()).enabled, 'the proxy to be enabled')
    t.pass('the toggle disables and enables the proxy')

    await page.type('input[aria-label="Partition name"]', 'blip')
    await page.type('input[aria-label="Partition proxies"]', 'web')
    await (await button(page, 'Cut partition'))!.click()
    await waitFor(async () => (await coquin.partitions()).some(p => p.name === 'blip' && p.state === 'cut'), 'the partition')
    await (await button(page, 'Heal blip'))!.click()
    await waitFor(async () => !(await coquin.partitions()).some(p => p.name === 'blip' && p.state === 'cut'), 'the heal')
    await page.waitForSelector('::-p-aria([name="Heal blip"][role="button"])', { hidden: true })
    t.pass('a partition is cut and healed from the page')

    const webRegion = await region(page, 'web')
    await (await webRegion!.waitForSelector('::-p-aria([name="Preset: slow database (latency + jitter)"][role="button"])'))!.click()
    await waitFor(async () => (await web.faults()).some(f => f.name === 'slow-db'), 'the preset')
    t.pass('a preset adds its fault')

    await page.type('textarea[aria-label="Scenario (JSON)"]',
      JSON.stringify({ name: 'flap', steps: [{ at: 0, proxy: { name: 'web', enabled: false } }, { at: '30s', proxy: { name: 'web', enabled: true } }] }))
    await (await button(page, 'Start scenario'))!.click()
    await page.waitForSelector('::-p-aria([name="Progress of flap"])')
    await (await button(page, 'Stop flap'))!.click()
    await waitFor(async () => (await coquin.scenarios()).every(s => s.state !== 'running'), 'the scenario to stop')
    t.pass('a scenario is started, shows its progress, and is stopped from the page')
    await web.update({ enabled: true })

    await get(web.port)
    await page.waitForSelector('::-p-aria([name="Events"]) li')
    t.pass('the timeline shows events as they happen')
    await page.screenshot({ path: `${SHOTS}dashboard-timeline.png`, fullPage: true })
    t.same(errors, [], 'no error in the page')
  })

  t.test('a page on another origin cannot change anything', async t => {
    const { server, coquin, page, backend } = await setup(t)
    const web = await coquin.create({ name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend}` })
    const target = new URL(server.url)
    // A cross-site form post (no custom header, Content-Type text/plain: no preflight) at both doors.
    const evil = await httpServer(t, (_req, res) => {
      res.setHeader('Content-Type', 'text/html')
      res.end(`<form id=a method=post action="http://${target.host}/ui/api/proxies/web" enctype="text/plain" target=fa>
          <input name='{"enabled":false,"x":"' value='"}'></form><iframe name=fa></iframe>
        <form id=b method=post action="http://${target.host}/proxies/web" enctype="text/plain" target=fb>
          <input name='{"enabled":false,"x":"' value='"}'></form><iframe name=fb></iframe>
        <script>
          document.getElementById('a').submit(); document.getElementById('b').submit()
          fetch("http://${target.host}/ui/api/proxies/web", { method: 'POST', mode: 'no-cors', body: '{"enabled":false}' })
            .finally(() => { document.title = 'sent' })
        </script>`)
    })
    const seen: number[] = []
    page.on('response', r => { if (r.url().startsWith(server.url)) seen.push(r.status()) })
    await page.goto(`http://127.0.0.1:${evil}/`)
    await page.waitForFunction('document.title === "sent"', { timeout: 5000 })
    await waitFor(async () => seen.length >= 3, 'the three requests to be answered')
    t.same(seen.sort(), [403, 403, 403], 'each is refused with 403')
    t.equal((await web.refresh()).enabled, true, 'the proxy is still enabled')
  })

  t.test('with --token the dashboard asks for the token', async t => {
    const { server, coquin, page, backend } = await setup(t, { token: 's3cret' })
    await coquin.create({ name: 'web', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend}` })
    await page.goto(`${server.url}/ui`)
    await page.waitForSelector('::-p-aria([name="API token"])')
    await page.type('input[type=password]', 's3cret')
    await (await button(page, 'Use token'))!.click()
    await region(page, 'web')
    t.pass('after the token is given, the proxies are shown')
  })
})

/** Waits until check() holds, re-checking after each answer (every check is an API round trip). */
async function waitFor<T>(check: () => Promise<T>, what: string, ms = 5000): Promise<NonNullable<T>> {
  const start = performance.now()
  for (;;) {
    const v = await check()
    if (v) return v as NonNullable<T>
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms}ms waiting for ${what}`)
    await new Promise(r => setImmediate(r))
  }
}

mkdirSync(SHOTS, { recursive: true })

t.test('the dashboard\'s guard, without a browser', async t => {
  const server = await startCoquin({ port: 0 })
  t.teardown(() => server.close())
  const page = await fetch(`${server.url}/ui`, { headers: { 'User-Agent': 'Mozilla/5.0' } })
  t.equal(page.status, 200, 'GET /ui is served to browsers')
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'with a strict content security policy')
  const csrf = /name="coquin-csrf" content="([^"]+)"/.exec(await page.text())![1]!
  const ua = { 'User-Agent': 'Mozilla/5.0' }
  t.equal((await fetch(`${server.url}/proxies`, { headers: ua })).status, 403, 'the JSON API still refuses browsers')
  t.equal((await fetch(`${server.url}/ui/api/proxies`, { headers: ua })).status, 403, '/ui/api without the token: 403')
  t.equal((await fetch(`${server.url}/ui/api/proxies`, { headers: { ...ua, 'X-Coquin-CSRF': 'nope' } })).status, 403, 'a wrong token: 403')
  t.equal((await fetch(`${server.url}/ui/api/proxies`, { headers: { ...ua, 'X-Coquin-CSRF': csrf } })).status, 200, 'the page\'s token: 200')
  t.equal((await fetch(`${server.url}/ui/api/proxies`, { headers: { ...ua, 'X-Coquin-CSRF': csrf, Origin: 'http://evil.example' } })).status, 403,
    'another Origin: 403')
  t.equal((await fetch(`${server.url}/ui/api/proxies`, { headers: { ...ua, 'X-Coquin-CSRF': csrf, 'Sec-Fetch-Site': 'cross-site' } })).status, 403,
    'Sec-Fetch-Site cross-site: 403')
  const rebound = await new Promise<number>((resolve, reject) => {
    const u = new URL(server.url)
    http.get({ host: u.hostname, port: u.port, path: '/ui', headers: { Host: `evil.example:${u.port}` } }, res => { res.resume(); resolve(res.statusCode!) })
      .on('error', reject)
  })
  t.equal(rebound, 403, 'a DNS-rebinding Host name: 403')
  t.equal((await fetch(`${server.url}/ui/assets/../../package.json`)).status, 404, 'only the listed assets are served')
  t.equal((await fetch(`${server.url}/ui/assets/preact.js`)).status, 200, 'the front-end libraries come from this install')
  const types = await (await fetch(`${server.url}/types`)).json() as { type: string; attributes: { properties: Record<string, unknown> } }[]
  t.match(types.find(x => x.type === 'latency'), { attributes: { properties: { latency: { type: 'integer' } } } }, 'GET /types: each behavior with its schema')
})
