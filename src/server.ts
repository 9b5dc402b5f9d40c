// A whole coquin: the proxy registry, the control API, metrics, logs, an optional config (watched
// and re-applied live) and the demo upstreams. `coquin serve` and embedded test suites start this.
import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'
import type { Behavior } from './faults/behavior.js'
import type { Clock } from './core/clock.js'
import { builtins } from '../behaviors/index.js'
import { startApi } from './api/api.js'
import { applyConfig, parseConfig, readConfigText, type Config } from './control/config.js'
import { startDemo, type Demo } from './control/demo.js'
import { silentLogger, throttledLog, type Logger } from './core/log.js'
import { Journal } from './observe/journal.js'
import { createMetrics } from './observe/metrics.js'
import { loggingObserver } from './observe/log-observer.js'
import { observers } from './observe/observer.js'
import { Registry, type ProxySpec } from './control/registry.js'
import { version } from './core/version.js'

export interface StartOptions {
  /** Control API address; port 0 picks a free one. Defaults: 127.0.0.1:8474. */
  host?: string
  port?: number
  seed?: number
  token?: string
  log?: Logger
  /** A config file to load at start (YAML, or Toxiproxy's JSON array). */
  config?: string
  /** Re-read the config file when it changes and apply the difference. */
  watch?: boolean
  /** Proxies to create at start, as in a config (used by `coquin proxy`). */
  proxies?: ProxySpec[]
  behaviors?: readonly Behavior[]
  /** The data path's clock (tests pass a manual one to step time). */
  clock?: Clock
  /** Events the journal keeps (`GET /events`); the oldest go first. Default 10,000. */
  journalSize?: number
  /** Links open at once over all proxies (default: what the file descriptor limit allows). */
  maxLinks?: number
  /** close(): how long open links may go on ending by themselves before they are cut. Default 0. */
  graceMs?: number
}

export interface CoquinServer {
  readonly registry: Registry
  readonly url: string
  readonly port: number
  readonly config?: Config
  /** What happened to links and requests (also `GET /events`). */
  readonly journal: Journal
  /**
   * Stop the control port and every listener at once; open links get graceMs (default: the
   * StartOptions' graceMs, else 0) to end by themselves, then are cut; then the demo upstreams.
   */
  close(graceMs?: number): Promise<void>
}

export async function startCoquin(opts: StartOptions = {}): Promise<CoquinServer> {
  const log = opts.log ?? silentLogger
  const behaviors = opts.behaviors ?? builtins
  const configText = opts.config ? await readConfigText(opts.config) : undefined
  const config = opts.config ? parseConfig(opts.config, configText!, behaviors) : undefined
  const seed = opts.seed ?? config?.settings.seed
  let registry: Registry | undefined
  const metrics = createMetrics({ coquin: () => registry?.proxies.values() ?? [], process: true })
  const warn = throttledLog(log)
  const journal = new Journal(opts.journalSize !== undefined ? { size: opts.journalSize } : {})
  registry = new Registry({
    behaviors, log, ...(seed !== undefined ? { seed } : {}), ...(opts.clock ? { clock: opts.clock } : {}),
    observer: observers(metrics.observer, loggingObserver(log, warn), journal),
    ...(opts.maxLinks !== undefined ? { maxLinks: opts.maxLinks } : {}),
  })
  const reg = registry
  let demo: Demo | undefined
  let watcher: FSWatcher | undefined
  let api: Awaited<ReturnType<typeof startApi>> | undefined
  const close = async (graceMs = opts.graceMs ?? 0) => {
    watcher?.close()
    const apiClosed = api?.close()              // both stop listening now; links may run on for the grace
    const regClosed = reg.close(graceMs)
    await apiClosed
    await regClosed
    journal.close()
    await demo?.close()
  }
  try {
    if (config?.settings.demo) demo = await startDemo(config.settings.demo)
    if (config) await applyConfig(reg, config)
    for (const p of opts.proxies ?? []) await reg.create(p)
    api = await startApi(reg, {
      version, log, metrics: () => metrics.text(), journal,
      host: opts.host ?? '127.0.0.1', port: opts.port ?? 8474,
      ...(opts.token ? { token: opts.token } : {}),
    })
  } catch (err) {
    await close()
    // A config can fail on several proxies (two ports in use): name them all, on one line.
    const failures = (err as { failures?: { proxy: string; error: unknown }[] }).failures
    if (failures && failures.length > 1) {
      (err as Error).message = failures.map(f => `${f.proxy}: ${(f.error as Error).message ?? String(f.error)}`).join('; ')
    }
    throw err
  }
  if (opts.watch && opts.config) watcher = watchConfig(opts.config, configText!, reg, behaviors, log)
  log.info({ url: api.url, dashboard: `${api.url}/ui`, proxies: reg.proxies.size, seed: reg.seed, version }, 'coquin started')
  return { registry: reg, journal, url: api.url, port: new URL(api.url).port ? Number(new URL(api.url).port) : 80, ...(config ? { config } : {}), close }
}

/**
 * Re-applies the config file when what its path names changes; a broken file is rejected with its error,
 * the running state kept. It watches the file's folder, not the file: editors and Kubernetes replace a
 * file by renaming another over it (a ConfigMap swaps a symlinked folder), and a watch on the file itself
 * would follow the old one, deleted, and miss every later change. Any change in the folder is looked at
 * (after 100 ms of quiet); the file is re-applied when its text differs from the last applied.
 */
function watchConfig(file: string, loaded: string, registry: Registry, behaviors: readonly Behavior[], log: Logger): FSWatcher {
  let timer: NodeJS.Timeout | undefined
  let running = Promise.resolve()
  let applied = loaded
  let missing = false
  const reload = () => {
    running = running.then(async () => {
      let text: string
      try {
        text = await readConfigText(file)
      } catch (err) {
        const gone = (err as { cause?: { code?: string } }).cause?.code === 'ENOENT'
        if (gone && missing) return
        missing = gone
        log.warn({ file, err: (err as Error).message }, gone ? 'config file missing: the running config is kept' : 'config reload rejected')
        return
      }
      missing = false
      if (text === applied) return
      try {
        await applyConfig(registry, parseConfig(file, text, behaviors))
        applied = text
        log.info({ file }, 'config reloaded')
      } catch (err) {
        log.warn({ file, err: (err as Error).message }, 'config reload rejected')
      }
    })
  }
  return watch(path.dirname(path.resolve(file)), () => {
    clearTimeout(timer)
    timer = setTimeout(reload, 100)
  }).on('close', () => clearTimeout(timer)).on('error', err => log.warn({ file, err: err.message }, 'config watch failed'))
}
