import { pino, type Logger, type Level } from 'pino'
import type { Clock } from './clock.js'
import { realClock } from './clock.js'

export type { Logger, Level }

export interface LogOptions { level?: string; format?: 'json' | 'pretty'; destination?: NodeJS.WritableStream }

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? 'info'
  if (opts.format === 'pretty') {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true, destination: 2 } } })
  }
  return opts.destination ? pino({ level }, opts.destination) : pino({ level }, pino.destination(2))
}

/** A logger that writes nothing: the default for embedded use and tests. */
export const silentLogger: Logger = pino({ level: 'silent' })

export type ThrottledLog = (level: Level, key: string, obj: object, msg: string) => void

/**
 * Rate-limits repeated events per key: the first one in each interval is logged, the rest are
 * counted and reported as `suppressed` on the next line for that key. Keys must have low cardinality
 * (proxy name + error code), and the map is bounded so that a bad key choice cannot grow it forever.
 */
export function throttledLog(log: Logger, clock: Clock = realClock, intervalMs = 10_000, maxKeys = 1000): ThrottledLog {
  const seen = new Map<string, { at: number; suppressed: number }>()
  return (level, key, obj, msg) => {
    const now = clock.now()
    const s = seen.get(key)
    if (s && now - s.at < intervalMs) { s.suppressed++; return }
    log[level]({ ...obj, suppressed: s?.suppressed ?? 0 }, msg)
    if (!s && seen.size >= maxKeys) seen.delete(seen.keys().next().value as string)
    seen.set(key, { at: now, suppressed: 0 })
  }
}
