// Worker process holding the upstream servers, so that they do not share the proxy's event loop.
import { serve } from './ipc.js'
import { portOf, startEcho, startSink, startSource, type Servers } from './servers.js'

const echo = await startEcho()
const source = await startSource()
const sink = await startSink()

serve({
  ports: (): Servers => ({ echo: portOf(echo), source: portOf(source), sink: portOf(sink.server) }),
  sunk: () => sink.bytes(),
})
