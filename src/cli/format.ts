// What the CLI commands share to read options and print: option parsers (-a key=value, toxicity, counts,
// lists), and formats for people (tables of toxics, journal events, partitions, durations).
import { InvalidArgumentError } from 'commander'
import type { Fault, FaultStream, JournalEvent, PartitionInfo } from '../client/index.js'
import { formatTable } from './table.js'
import { UsageError } from './context.js'

/** A `-a key=value` value: a number if it reads as one, true/false as booleans, else the string. */
export function parseValue(v: string): unknown {
  if (v === 'true') return true
  if (v === 'false') return false
  if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  return v
}

/** Collects repeated `-a key=value` into an attributes object. */
export function attribute(kv: string, acc: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = kv.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError('expected key=value.')
  return { ...acc, [kv.slice(0, eq).trim()]: parseValue(kv.slice(eq + 1).trim()) }
}

export function toxicity(v: string): number {
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1.')
  return n
}


export const count = (what: string) => (v: string): number => {
  const n = Number(v)
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer.`)
  return n
}

/** `--proxy a,b --proxy c` → ['a', 'b', 'c']. */
export const list = (v: string, acc: string[] = []): string[] => [...acc, ...v.split(',').map(x => x.trim()).filter(x => x !== '')]

/** One journal event as a line for people: id, time, proxy, link, type, then what the type carries. */
export function formatEvent(e: JournalEvent): string {
  const head = `${e.id} ${new Date(e.time).toISOString()} ${e.proxy} link=${e.link} ${e.type}`
  switch (e.type) {
    case 'link_open': return `${head} client=${e.client}`
    case 'link_close':
      return `${head} reason=${e.reason} up=${e.bytes_upstream} down=${e.bytes_downstream} ms=${e.duration_ms}${e.error ? ` error=${e.error}` : ''}`
    case 'fault': return `${head} toxic=${e.toxic} type=${e.toxic_type} stream=${e.stream}${e.request ? ` request=${e.request}` : ''}`
    case 'fault_acted':
      return `${head} toxic=${e.fault} type=${e.toxic_type} action=${e.action}${e.stream ? ` stream=${e.stream}` : ''}${e.request ? ` request=${e.request}` : ''}`
    case 'http_request':
      return `${head} ${e.method} ${e.path} ${e.status} source=${e.source} ms=${e.latency_ms} request=${e.request}` +
        (e.faults?.length ? ` faults=${e.faults.join(',')}` : '')
    case 'redis_command':
      return `${head} ${e.command}${e.key !== undefined ? ` ${e.key}` : ''} db=${e.db} ${e.outcome} source=${e.source} ms=${e.latency_ms} request=${e.request}` +
        (e.faults?.length ? ` faults=${e.faults.join(',')}` : '')
    case 'pg_query':
      return `${head} ${e.statement || '-'} ${e.outcome} source=${e.source} ms=${e.latency_ms} request=${e.request} db=${e.database} user=${e.user}` +
        (e.faults?.length ? ` faults=${e.faults.join(',')}` : '') + ` ${JSON.stringify(e.query)}`
    default: return `${head} ${JSON.stringify(e)}`
  }
}

/** A long default (http_throttle's XML body) cut to n characters, on one line, so the table stays readable. */
export function shorten(s: string, n: number): string {
  const line = s.replace(/\s+/g, ' ')
  return line.length <= n ? line : `${line.slice(0, n - 1)}…`
}

export function formatValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v)
}

export function formatAttributes(attrs: Record<string, unknown> | undefined): string {
  return Object.entries(attrs ?? {}).map(([k, v]) => `${k}=${formatValue(v)}`).join(' ')
}

export function toxicsTable(toxics: readonly Fault[]): string {
  return formatTable(['NAME', 'TYPE', 'STREAM', 'TOXICITY', 'ATTRIBUTES'],
    toxics.map(t => [t.name, t.type, t.stream, String(t.toxicity), formatAttributes(t.attributes)]))
}

export function streamOf(o: { upstream?: boolean; downstream?: boolean; both?: boolean; stream?: string }): FaultStream | undefined {
  const picked = (['upstream', 'downstream', 'both'] as const).filter(s => o[s])
  if (o.stream !== undefined) {
    if (!['upstream', 'downstream', 'both'].includes(o.stream)) throw new UsageError(`--stream must be upstream, downstream or both: ${o.stream}`)
    picked.push(o.stream as FaultStream)
  }
  if (new Set(picked).size > 1) throw new UsageError('give one of --upstream, --downstream, --both')
  return picked[0]
}

/** `250` → `250ms`, `1500` → `1.5s`, `120000` → `2m`: durations for people. */
export function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000}m` : `${(ms / 1000).toFixed(1)}s`
}

/** `blackhole, both, clients 127.0.0.2, heals in 10.0s` */
export function partitionHow(p: PartitionInfo): string {
  return [p.mode, ...(p.mode === 'blackhole' || p.mode === 'hold' ? [p.direction] : []), ...(p.clients ? [`clients ${p.clients.join(' ')}`] : []),
    ...(p.duration !== undefined ? [`heals in ${seconds(p.duration)}`] : []),
    ...(p.flap ? [`flapping up ${seconds(p.flap.up)} / down ${seconds(p.flap.down)}`] : [])].join(', ')
}
