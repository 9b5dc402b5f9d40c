// What the core tells the outside about links and faults: metrics and the journal listen here.
// The data path calls only per-link or per-fault methods, never per chunk.
import type { Fault } from './fault.js'
import type { Link } from './link.js'

export interface Observer {
  linkOpened(proxy: string, link: Link): void
  linkClosed(proxy: string, link: Link, reason: string, err?: Error): void
  upstreamConnected(proxy: string, seconds: number): void
  upstreamConnectError(proxy: string, code: string): void
  faultApplied(proxy: string, fault: Fault, link: Link): void
  bytesDropped(proxy: string, stream: string, bytes: number): void
  bytesCorrupted(proxy: string, stream: string, bytes: number): void
}

export const nullObserver: Observer = {
  linkOpened() {}, linkClosed() {}, upstreamConnected() {}, upstreamConnectError() {},
  faultApplied() {}, bytesDropped() {}, bytesCorrupted() {},
}

/** Fans one event out to several observers (metrics, journal, a test's spy). */
export function observers(...list: Observer[]): Observer {
  const each = <K extends keyof Observer>(k: K) =>
    ((...args: unknown[]) => { for (const o of list) (o[k] as (...a: unknown[]) => void)(...args) }) as Observer[K]
  return {
    linkOpened: each('linkOpened'), linkClosed: each('linkClosed'), upstreamConnected: each('upstreamConnected'),
    upstreamConnectError: each('upstreamConnectError'), faultApplied: each('faultApplied'),
    bytesDropped: each('bytesDropped'), bytesCorrupted: each('bytesCorrupted'),
  }
}
