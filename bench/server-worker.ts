// Worker process holding the upstream servers, so that they do not share the proxy's event loop.
import { serve } from './ipc.js'
import { portOf, startEcho, startHttp, startSink, startSource, type Servers } from './servers.js'

const echo = await startEcho()
const source = await startSource()
const sink = await startSink()
const http = await startHttp()

serve({
  ports: (): Servers => ({ echo: portOf(echo), source: portOf(source), sink: portOf(sink.server), http: portOf(http) }),
  sunk: () => sink.bytes(),
})
