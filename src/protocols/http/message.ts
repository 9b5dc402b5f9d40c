// Heads coquin writes: an edited copy of a head that passed through, or a response of its own.
import { STATUS_CODES } from 'node:http'
import type { HeaderEdit } from '../../faults/behavior.js'
import type { Head } from './framer.js'

/** Strips what would end a line: a set value can never inject a field or a message. */
const clean = (s: string) => s.replace(/[\r\n]+/g, ' ')

/** Merges edits in order: a later `set` wins, a later `remove` undoes an earlier `set`. */
export function mergeEdits(a: HeaderEdit | undefined, b: HeaderEdit | undefined): HeaderEdit | undefined {
  if (!a) return b
  if (!b) return a
  const set = new Map<string, [string, string]>()
  for (const [k, v] of Object.entries(a.set ?? {})) set.set(k.toLowerCase(), [k, v])
  const remove = new Set((a.remove ?? []).map(n => n.toLowerCase()))
  for (const n of b.remove ?? []) { set.delete(n.toLowerCase()); remove.add(n.toLowerCase()) }
  for (const [k, v] of Object.entries(b.set ?? {})) { set.set(k.toLowerCase(), [k, v]); remove.delete(k.toLowerCase()) }
  return { set: Object.fromEntries([...set.values()]), remove: [...remove] }
}

/** The head with fields removed and set (set fields go last, once each); untouched fields keep their bytes. */
export function rewriteHead(head: Head, edit: HeaderEdit): Buffer {
  const drop = new Set<string>()
  for (const n of edit.remove ?? []) drop.add(n.toLowerCase())
  const set = Object.entries(edit.set ?? {})
  for (const [n] of set) drop.add(n.toLowerCase())
  const raw = head.raw
  const parts: Buffer[] = [raw.subarray(0, head.startEnd)]
  let keepFrom = -1
  for (const f of head.fields) {
    if (f.lower !== '' && drop.has(f.lower)) {
      if (keepFrom >= 0) { parts.push(raw.subarray(keepFrom, f.start)); keepFrom = -1 }
    } else if (keepFrom < 0) keepFrom = f.start
  }
  if (keepFrom >= 0) parts.push(raw.subarray(keepFrom, head.fieldsEnd))
  if (set.length > 0) parts.push(Buffer.from(set.map(([n, v]) => `${clean(n)}: ${clean(v)}\r\n`).join(''), 'latin1'))
  parts.push(raw.subarray(head.fieldsEnd))
  return Buffer.concat(parts)
}

export interface SyntheticResponse {
  readonly head: Buffer
  readonly body: Buffer
}

/**
 * A complete response: status line, the given headers (framing and connection fields are coquin's),
 * Content-Length, and `Connection: close` when the connection ends after it. No body for HEAD, 1xx, 204, 304.
 */
export function buildResponse(opts: {
  status: number
  headers?: Readonly<Record<string, string>>
  body?: string | Buffer
  method: string
  close: boolean
  /** An HTTP/1.0 client that asked for keep-alive: say it is kept. */
  keepAlive10: boolean
  edit?: HeaderEdit | undefined
}): SyntheticResponse {
  const { status } = opts
  const bodyless = status < 200 || status === 204 || status === 304
  const body = bodyless ? Buffer.alloc(0) : typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body ?? Buffer.alloc(0)
  let fields = Object.entries(opts.headers ?? {})
  if (opts.edit) {
    const e = mergeEdits({ set: Object.fromEntries(fields) }, opts.edit)!
    fields = Object.entries(e.set ?? {})
  }
  const reserved = new Set(['content-length', 'transfer-encoding', 'connection'])
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`
  for (const [n, v] of fields) if (!reserved.has(n.toLowerCase())) text += `${clean(n)}: ${clean(v)}\r\n`
  if (status !== 204 && status >= 200) text += `Content-Length: ${body.length}\r\n`
  if (opts.close) text += 'Connection: close\r\n'
  else if (opts.keepAlive10) text += 'Connection: keep-alive\r\n'
  text += '\r\n'
  return { head: Buffer.from(text, 'latin1'), body: opts.method === 'HEAD' ? Buffer.alloc(0) : body }
}
