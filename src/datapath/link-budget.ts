// How many links coquin may hold open at once, so that it never runs out of file descriptors itself.
// Node cannot stop accepting on a listener, and when accept() hits EMFILE libuv closes the pending
// connections on a spare descriptor without telling anyone. So coquin keeps its own count: at the
// limit, a new client connection is reset at once and counted (`coquin_connections_shed_total`), with
// a reserve of descriptors left for the control API and for upstream connects; as links close,
// connections are served again.
import { readFileSync, readdirSync } from 'node:fs'

export interface LinkBudget {
  /** Links (and TLS handshakes) allowed open at once, over all proxies. */
  readonly max: number
  /** Open now. */
  open: number
}

/** Descriptors kept back for everything that is not a link: the control API, logs, files, DNS. */
export const RESERVE_FDS = 32

/** The soft RLIMIT_NOFILE, from /proc (Linux); undefined where it cannot be read or is unlimited. */
export function fdLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

function fdsOpen(): number {
  try { return readdirSync('/proc/self/fd').length } catch { return 0 }
}

/**
 * The default budget: each link holds two descriptors (client and upstream), so half of what the
 * limit leaves after the descriptors open now and the reserve; unlimited where the limit is unknown.
 */
export function linkBudget(max?: number): LinkBudget {
  if (max !== undefined) return { max, open: 0 }
  const limit = fdLimit()
  if (limit === undefined) return { max: Infinity, open: 0 }
  return { max: Math.max(1, Math.floor((limit - fdsOpen() - RESERVE_FDS) / 2)), open: 0 }
}
