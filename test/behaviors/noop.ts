import t from 'tap'
import { once } from 'node:events'
import { hashUntilEnd, sendRandom, until, within, withEchoProxy, assertEchoExact } from '../helpers/net.js'

t.test('noop passes 8 MiB each way byte-exact, in random chunk sizes', async t => {
  const { client, proxy } = await withEchoProxy(t, [{ type: 'noop', stream: 'both' }])
  t.equal([...proxy.links][0]?.up.nodes.length, 1, 'the stage is on the chain (not the fast path)')
  await assertEchoExact(t, client, proxy, 8 << 20)
  t.equal(proxy.connections, 0)
})
