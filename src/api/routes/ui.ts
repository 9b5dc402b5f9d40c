// The web dashboard on the control port: GET /ui (one page), GET /ui/assets/* (its script and the
// front-end libraries, served from this install: no CDN), and the dashboard's own way into the API,
// /ui/api/<any API route>, guarded against cross-site requests (uiGuard) instead of by the API's
// browser rule (403 to every browser, as in Toxiproxy), which keeps protecting the JSON API itself.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import path from 'node:path'
import http from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { text, type Reply, type Route } from '../http.js'

/** The header every /ui/api request carries: the per-process token the page was served with. */
export const CSRF_HEADER = 'x-coquin-csrf'

const require = createRequire(import.meta.url)

/** Where the dashboard's own files are: src/ui/static, which `npm run build` copies to dist/src/ui/static. */
function staticDir(): string {
  return fileURLToPath(new URL('../../ui/static/', import.meta.url))
}

/** A file beside a package's entry point (the packages' `exports` do not list their ESM and CSS files). */
function besideEntry(pkg: string, file: string): string {
  try {
    return path.join(path.dirname(require.resolve(pkg)), file)
  } catch {
    return ''                                      // not installed: that asset answers 404
  }
}

/** The files /ui/assets serves: name → [path, content type]. Nothing else is reachable. */
function assets(): Map<string, [string, string]> {
  const js = 'text/javascript; charset=utf-8'
  const css = 'text/css; charset=utf-8'
  const dir = staticDir()
  return new Map([
    ['app.js', [path.join(dir, 'app.js'), js]],
    ['app.css', [path.join(dir, 'app.css'), css]],
    ['preact.js', [besideEntry('preact', 'preact.module.js'), js]],       // ~12 KB
    ['hooks.js', [besideEntry('preact/hooks', 'hooks.module.js'), js]],   // ~4 KB
    ['htm.js', [besideEntry('htm', 'htm.module.js'), js]],                // ~1 KB
    ['uplot.js', [besideEntry('uplot', 'uPlot.iife.min.js'), js]],        // ~50 KB
    ['uplot.css', [besideEntry('uplot', 'uPlot.min.css'), css]],
  ])
}

/** preact/hooks imports `preact`: the import map names where it is (inline, so allowed by its hash). */
const IMPORT_MAP = JSON.stringify({ imports: { preact: '/ui/assets/preact.js' } })
const IMPORT_MAP_HASH = createHash('sha256').update(IMPORT_MAP).digest('base64')

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; " +
    `script-src 'self' 'sha256-${IMPORT_MAP_HASH}'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
}

function page(csrf: string, version: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="coquin-csrf" content="${csrf}">
<meta name="coquin-version" content="${version.replace(/[^\w.+-]/g, '')}">
<title>coquin</title>
<link rel="icon" href="data:,">
<script type="importmap">${IMPORT_MAP}</script>
<link rel="stylesheet" href="/ui/assets/uplot.css">
<link rel="stylesheet" href="/ui/assets/app.css">
<script src="/ui/assets/uplot.js"></script>
<script type="module" src="/ui/assets/app.js"></script>
</head>
<body><main id="app"><p>Loading…</p></main></body>
</html>
`
}

/** GET /ui and GET /ui/assets/<file>: open (the page asks for the API token itself when there is one). */
export function uiRoutes(csrf: string, version: string): Route[] {
  const files = assets()
  const cache = new Map<string, Buffer>()
  return [
    {
      path: ['ui'],
      open: true,
      browser: true,
      methods: { GET: { run: () => ({ status: 200, body: page(csrf, version), type: 'text/html; charset=utf-8', headers: SECURITY_HEADERS }) } },
    },
    {
      path: ['ui', '*'],
      open: true,
      browser: true,
      methods: { GET: { run: () => ({ status: 301, headers: { Location: '/ui' } }) } },
    },
    {
      path: ['ui', 'assets', '*'],
      open: true,
      browser: true,
      methods: {
        GET: {
          async run({ params }): Promise<Reply> {
            const file = files.get(params[0]!)
            if (!file || file[0] === '') return text(404, '404 page not found')
            let body = cache.get(params[0]!)
            if (!body) {
              try { body = await readFile(file[0]) } catch { return text(404, '404 page not found') }
              cache.set(params[0]!, body)
            }
            return { status: 200, body, type: file[1], headers: { ...SECURITY_HEADERS, 'Cache-Control': 'no-cache' } }
          },
        },
      },
    },
  ]
}

/** Host names the dashboard answers to: IP literals and localhost (a DNS-rebinding page names its own host). */
function hostAllowed(host: string | undefined): boolean {
  if (!host) return false
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '')
  return name === 'localhost' || net.isIP(name) !== 0
}

/**
 * The dashboard's guard, for /ui pages and every /ui/api request: the Host must be an address or localhost
 * (DNS rebinding), a browser's Sec-Fetch-Site and Origin must say same origin, and /ui/api requests must
 * carry the page's token in X-Coquin-CSRF — which a cross-site form or a page on another origin cannot send.
 * Returns the refusal, or null.
 */
export function uiGuard(req: http.IncomingMessage, csrf: string, api: boolean): Reply | null {
  if (!hostAllowed(req.headers.host)) return text(403, 'the dashboard answers to an IP address or localhost only')
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return text(403, 'cross-site request refused')
  const origin = req.headers.origin
  if (origin !== undefined && origin !== `http://${req.headers.host}`) return text(403, 'cross-origin request refused')
  if (!api) return null
  const sent = req.headers[CSRF_HEADER]
  const a = Buffer.from(typeof sent === 'string' ? sent : '')
  const b = Buffer.from(csrf)
  if (a.length !== b.length || !timingSafeEqual(a, b)) return text(403, 'missing or wrong X-Coquin-CSRF token: reload /ui')
  return null
}
