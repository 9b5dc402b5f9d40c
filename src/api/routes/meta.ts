// Routes open without the token: the version (Toxiproxy's exact bytes), the health check, and metrics.
import { json, type Route } from '../http.js'

export function metaRoutes(version: string, metrics?: () => Promise<{ contentType: string; body: string }>): Route[] {
  const routes: Route[] = [
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
