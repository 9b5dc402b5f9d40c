// Logs what the core observes (STYLE §7): one debug line per link at open and at close, and upstream
// connect errors as throttled warnings, so that a dead upstream under load writes a few lines, not one per client.
import type { Logger, ThrottledLog } from '../core/log.js'
import type { Observer } from './observer.js'

export function loggingObserver(log: Logger, warn: ThrottledLog): Observer {
  /** One child logger per proxy, made once. */
  const children = new Map<string, Logger>()
  const child = (proxy: string): Logger => {
    let c = children.get(proxy)
    if (!c) { c = log.child({ proxy }); children.set(proxy, c) }
    return c
  }
  return {
    linkOpened(proxy, link) {
      const l = child(proxy)
      if (l.isLevelEnabled('debug')) l.debug({ link: link.id }, 'link opened')
    },
    linkClosed(proxy, link, reason, err) {
      const l = child(proxy)
      if (!l.isLevelEnabled('debug')) return
      const faults = link.faultNames
      l.debug({
        link: link.id, reason, up: link.bytesUpstream, down: link.bytesDownstream, ms: Date.now() - link.openedAt,
        ...(faults.length > 0 ? { faults } : {}), ...(err ? { err } : {}),
      }, 'link closed')
    },
    upstreamConnected() {},
    upstreamConnectError(proxy, code) {
      warn('warn', `${proxy}:${code}`, { proxy, code }, 'upstream unreachable')
    },
    faultApplied(proxy, fault, link) {
      const l = child(proxy)
      if (l.isLevelEnabled('trace')) l.trace({ link: link.id, toxic: fault.name, type: fault.type }, 'fault applied')
    },
    bytesDropped() {},
    bytesCorrupted() {},
    protocolFallback(proxy, link, f) {
      warn('warn', `${proxy}:protocol_fallback:${f.stream}`, { proxy, link: link.id, protocol: f.protocol, stream: f.stream, reason: f.detail },
        `${f.protocol} link passes through as tcp: it cannot be framed`)
    },
    httpFallback(proxy, link, f) {
      warn('warn', `${proxy}:http_fallback:${f.stream}:${f.reason}`, { proxy, link: link.id, stream: f.stream, reason: f.detail, action: f.action },
        f.action === 'close' ? 'http link closed: it cannot be framed' : 'http link passes through unmatched: it cannot be framed')
    },
  }
}
