// Routes open without the token: the version (Toxiproxy's exact bytes), the health check, and metrics.
import { json, type Route } from '../http.js'
import type { Behavior } from '../../faults/behavior.js'

export function metaRoutes(version: string, metrics?: () => Promise<{ contentType: string; body: string }>, behaviors: readonly Behavior[] = []): Route[] {
  // coquin's own: the fault types, each with its attributes' JSON Schema (what the dashboard's forms are made from)
  const types = behaviors.map(b => ({
    type: b.type, summary: b.summary, ...(b.notes ? { notes: b.notes } : {}), ...(b.protocols ? { protocols: b.protocols } : {}),
    kind: b.connect ? 'connect' : b.stage ? 'stream' : 'message', attributes: b.attributes,
  }))
  const routes: Route[] = [
    {
      path: ['types'],
      methods: { GET: { run: () => json(200, types) } },
    },
    {
      path: ['version'],
      open: true,
      // Toxiproxy's exact bytes: a space after the colon, a trailing newline, this content type.
      methods: { GET: { run: () => ({ status: 200, body: `{"version": ${JSON.stringify(version)}}\n`, type: 'application/json;charset=utf-8' }) } },
    },
    {
      path: ['healthz'],
      open: true,
      methods: { GET: { run: () => json(200, { status: 'ok' }) } },
    },
  ]
  if (metrics) {
    routes.push({
      path: ['metrics'],
      open: true,
      methods: {
        GET: {
          async run() {
            const m = await metrics()
            return { status: 200, body: m.body, type: m.contentType }
          },
        },
      },
    })
  }
  return routes
}
