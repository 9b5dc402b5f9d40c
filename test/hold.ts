// A blip that heals the requests in flight: `blackhole` with `mode: hold` and partitions in `hold` mode keep
// the bytes (bounded by the high-water mark, with backpressure) and deliver them on heal, so an HTTP request
// with no timeout completes once the network is back — where `drop` loses it for good.
import t, { type Test } from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Client } from 'undici'
import { connect, echoServer, hashUntilEnd, proxyTo, sendRandom, until, within } from './helpers/net.js'
import { nullObserver, type Observer } from '../src/observe/observer.js'
import { HIGH_WATER } from '../src/datapath/link.js'
import type { FaultSpec } from '../src/faults/fault.js'

type T = Test

/** An HTTP server answering `pong <path>`, a proxy in front of it, and an observer that says when a fault held bytes. */
async function setup(t: T, toxics: FaultSpec[] = []) {
  const web = http.createServer((req, res) => res.end(`pong ${req.url}`))
  web.listen(0, '127.0.0.1')
  await once(web, 'listening')
  t.teardown(() => { web.closeAllConnections(); web.close() })
  const held: string[] = []
  const waiting: (() => void)[] = []
  const observer: Observer = {
    ...nullObserver,
    faultActed(_proxy, fault, _link, action, _request, stream) {
      if (action !== 'held') return
      held.push(`${fault.type}:${stream}`)
      for (const w of waiting.splice(0)) w()
    },
  }
  const { registry, proxy } = await proxyTo(t, (web.address() as AddressInfo).port, toxics, { observer })
  const client = new Client(`http://127.0.0.1:${proxy.port}`)
  t.teardown(() => client.destroy())
  const heldOnce = () => (held.length > 0 ? Promise.resolve() : new Promise<void>(resolve => waiting.push(resolve)))
  return { registry, proxy, client, held, heldOnce }
}

t.test('blackhole hold: a request sent during the blip is answered after it heals, on the same connection', async t => {
  const { registry, proxy, client, held, heldOnce } = await setup(t)
  t.equal(await (await client.request({ method: 'GET', path: '/before' })).body.text(), 'pong /before')
  proxy.addFault(registry.makeFault({ name: 'blip', type: 'blackhole', stream: 'upstream', attributes: { mode: 'hold' } }))
  let answered = false
  const during = client.request({ method: 'GET', path: '/during' }).then(async r => { answered = true; return r.body.text() })
  await within(heldOnce(), 5000, 'the request to be held')
  t.same(held, ['blackhole:upstream'])
  t.notOk(answered, 'no answer while the blip lasts')
  proxy.removeFault('blip')
  t.equal(await within(during, 5000, 'the answer after healing'), 'pong /during', 'the request in flight completed')
  t.equal(proxy.connections, 1, 'on the same connection')
})

t.test('blackhole drop (the default): the same request is lost for good', async t => {
  const { registry, proxy, client } = await setup(t)
  t.equal(await (await client.request({ method: 'GET', path: '/before' })).body.text(), 'pong /before')
  const dropped = new Promise<void>(resolve => {
    const o = proxy.observer
    const was = o.bytesDropped
    o.bytesDropped = (...a) => { was.apply(o, a); resolve() }
  })
  proxy.addFault(registry.makeFault({ name: 'blip', type: 'blackhole', stream: 'upstream' }))
  const ac = new AbortController()
  const during = client.request({ method: 'GET', path: '/during', signal: ac.signal }).then(() => 'answered', () => 'aborted')
  await within(dropped, 5000, 'the request to be dropped')
  proxy.removeFault('blip')
  // Healed, but the request's bytes are gone: a keep-alive request after it would get its answer; this one never does.
  const other = new Client(`http://127.0.0.1:${proxy.port}`)
  t.teardown(() => other.destroy())
  t.equal(await (await other.request({ method: 'GET', path: '/other' })).body.text(), 'pong /other', 'the path works again')
  ac.abort()
  t.equal(await within(during, 5000, 'abort'), 'aborted', 'the request sent during the blip was never answered')
})

t.test('partition hold: cut, a request in flight, heal; flap keeps holding', async t => {
  const { registry, proxy, client, held, heldOnce } = await setup(t)
  t.equal(await (await client.request({ method: 'GET', path: '/before' })).body.text(), 'pong /before')
  registry.partitions.cut({ name: 'blip', proxies: [proxy.name], mode: 'hold' })
  const during = client.request({ method: 'GET', path: '/during' }).then(r => r.body.text())
  await within(heldOnce(), 5000, 'the request to be held')
  t.same(held, ['partition:upstream'], 'the upstream direction held it')
  registry.partitions.heal('blip')
  t.equal(await within(during, 5000, 'the answer after healing'), 'pong /during')
})

t.test('hold is bounded: the sender is paused at the high-water mark, and on heal every byte arrives in order', async t => {
  const echo = await echoServer(t)
  const { proxy } = await proxyTo(t, echo.port, [{ name: 'blip', type: 'blackhole', stream: 'upstream', attributes: { mode: 'hold' } }])
  const c = await connect(t, proxy.port)
  const total = 8 * HIGH_WATER
  const back = hashUntilEnd(c)
  const sent = sendRandom(c, total)
  const link = () => [...proxy.links][0]!
  await until(() => proxy.links.size === 1 && link().client.isPaused(), 5000, 'the client to be paused')
  const read = link().client.bytesRead
  t.ok(read <= HIGH_WATER + 256 * 1024, `coquin read ${read} bytes while holding: bounded by the mark`)
  t.equal(link().upstream.bytesWritten, 0, 'nothing went upstream during the hold')
  proxy.removeFault('blip')
  const hash = await within(sent, 30_000, 'all sent')
  const got = await back
  t.equal(got.bytes, total)
  t.equal(got.hash, hash, 'every byte, in order')
})
