// Fixtures for the tests of misbehaving peers (test/upstream-faults.ts, test/client-faults.ts): a proxy
// with its own metrics and readers for its counters, and a leak check on descriptors, sockets and timers.
import { readdirSync } from 'node:fs'
import { createMetrics } from '../../src/observe/metrics.js'
import type { Registry } from '../../src/control/registry.js'
import type { FaultSpec } from '../../src/faults/fault.js'
import { registry, until } from './net.js'

type T = { teardown(fn: () => unknown): void; ok(v: unknown, msg: string): unknown }

/** A registry with its own metrics, one proxy `p` in front of `upstream`, and readers for its counters. */
export async function harness(t: T, upstream: string, opts: { listen?: string; toxics?: FaultSpec[] } = {}) {
  let reg: Registry | undefined
  const metrics = createMetrics({ coquin: () => reg?.proxies.values() ?? [] })
  reg = await registry(t, { observer: metrics.observer })
  const proxy = await reg.create({ name: 'p', listen: opts.listen ?? '127.0.0.1:0', upstream, toxics: opts.toxics ?? [] })
  /** `{ label value: count }` of one counter, by one label, for this proxy. */
  const by = async (name: string, label: string): Promise<Record<string, number>> => {
    const m = (await metrics.register.getMetricsAsJSON()).find(x => x.name === name)
    const out: Record<string, number> = {}
    for (const v of m?.values ?? []) if (v.labels.proxy === 'p' && v.value > 0) out[String(v.labels[label])] = v.value
    return out
  }
  return {
    registry: reg, proxy,
    /** `{ reason: links }` of coquin_links_closed_total. */
    closedBy: () => by('coquin_links_closed_total', 'reason'),
    /** `{ code: failures }` of coquin_upstream_connect_errors_total. */
    connectErrors: () => by('coquin_upstream_connect_errors_total', 'code'),
    opened: async () => (await by('coquin_links_opened_total', 'proxy')).p ?? 0,
  }
}

/**
 * Descriptors, sockets and timers now (once the sockets of earlier tests have closed: call it before
 * any client connects); the returned check waits for them to fall back, then asserts.
 */
export async function baseline(t: T) {
  const snap = () => {
    const r = process.getActiveResourcesInfo()
    return { fds: readdirSync('/proc/self/fd').length, sockets: r.filter(x => x === 'TCPSocketWrap').length, timers: r.filter(x => x === 'Timeout').length }
  }
  await until(() => snap().sockets === 0, 2000).catch(() => {})
  const base = snap()
  const back = () => { const n = snap(); return n.fds <= base.fds && n.sockets <= base.sockets && n.timers <= base.timers }
  return async () => {
    await until(back, 5000, 'resources back to baseline').catch(() => {})
    const n = snap()
    t.ok(back(), `no leak: fds ${n.fds}/${base.fds}, sockets ${n.sockets}/${base.sockets}, timers ${n.timers}/${base.timers}`)
  }
}
