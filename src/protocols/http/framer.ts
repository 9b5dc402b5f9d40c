// An incremental HTTP/1.x framer: it finds message boundaries in a byte stream and hands on slices of
// the chunks it is given, never copying a body. It parses heads (start line and fields) and frames
// bodies (Content-Length, chunked with extensions and trailers, read-until-close); it does not
// validate more than framing needs. What it cannot frame it reports once (`error`) and hands on as
// `raw` from there on: no byte is ever lost or reordered.

// Limits are set so that whatever node:http (llhttp) accepts at its defaults is framed: its whole head is
// at most 16 KiB (--max-http-header-size) with no limit on the number of fields, lengths may carry any
// number of leading zeros. A message over these limits is one node would refuse (431, 400) anyway.
export const MAX_HEAD_BYTES = 64 * 1024
/** The largest Content-Length or chunk size framed: 2^53 - 1, beyond any body that could complete. */
const MAX_LENGTH = Number.MAX_SAFE_INTEGER

const LF = 0x0a
const CR = 0x0d
const SP = 0x20
const HT = 0x09

/** RFC 9110 tchar. */
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1
const HEX = new Int8Array(256).fill(-1)
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i
}

/**
 * The reason a stream could not be framed, as one of a fixed set (a metric label): the framer's own words
 * name the case (`bad content-length`) and go in the journal beside it.
 */
export function fallbackReason(detail: string): 'not_http' | 'unsupported_version' | 'bad_length' | 'bad_chunk' | 'too_large' | 'other' {
  if (detail.startsWith('not an HTTP') || detail.startsWith('bad request line') || detail.startsWith('bad status line')) return 'not_http'
  if (detail.startsWith('unsupported version')) return 'unsupported_version'
  if (detail.includes('content-length') || detail.includes('transfer-encoding')) return 'bad_length'
  if (detail.includes('too large') || detail.startsWith('too much')) return 'too_large'
  if (detail.includes('chunk')) return 'bad_chunk'
  return 'other'
}

export interface HeaderField {
  /** As sent; `''` for a line that is not a field (kept as it is, ignored). */
  readonly name: string
  readonly lower: string
  /** Trimmed; obs-fold continuation lines joined with one space. */
  readonly value: string
  /** Byte range of the field's line(s) in the head, line ends included. */
  readonly start: number
  readonly end: number
}

interface HeadBase {
  /** The head's bytes exactly as received, start line to the empty line included. */
  readonly raw: Buffer
  /** End of the start line, its line end included. */
  readonly startEnd: number
  /** Start of the empty line that ends the head. */
  readonly fieldsEnd: number
  readonly fields: readonly HeaderField[]
  readonly version: string
  /** Last coding is `chunked`. */
  readonly chunked: boolean
  /** Transfer-Encoding present, last coding not chunked. */
  readonly otherCoding: boolean
  /** -1 when absent. */
  readonly contentLength: number
  readonly connection: { readonly close: boolean; readonly keepAlive: boolean; readonly upgrade: boolean }
}

export interface RequestHead extends HeadBase {
  readonly kind: 'request'
  readonly method: string
  readonly target: string
  /** Upgrade (with `Connection: upgrade`) or CONNECT: the stream may turn into a tunnel after it. */
  readonly upgrade: boolean
  readonly expectContinue: boolean
  /** HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`. */
  readonly keepAlive: boolean
  /** The first Host field's value, trimmed; undefined without one. */
  readonly host: string | undefined
}

export interface ResponseHead extends HeadBase {
  readonly kind: 'response'
  readonly status: number
  readonly reason: string
}

export type Head = RequestHead | ResponseHead

const COLON = 0x3a
const DOT = 0x2e
const SLASH = 0x2f
/** `1.0` … `1.9`, so that a head does not build its version string. */
const VERSIONS = Array.from({ length: 10 }, (_, d) => `1.${d}`)
/** Methods a request line usually carries, read without building a string. */
const METHODS = ['GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'TRACE', 'DELETE', 'OPTIONS', 'CONNECT']

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39

/** Where the start line parsers put what they read (scratch: parsing is synchronous, never re-entered). */
const line = { a: 0, b: 0, c: 0, major: 0, minor: 0, status: 0 }

/** `HTTP/d.d` at buf[i]. */
function isVersion(buf: Buffer, i: number): boolean {
  return buf[i] === 0x48 && buf[i + 1] === 0x54 && buf[i + 2] === 0x54 && buf[i + 3] === 0x50 && buf[i + 4] === SLASH &&
    isDigit(buf[i + 5]) && buf[i + 6] === DOT && isDigit(buf[i + 7])
}

/**
 * A request line, buf[from, to) without its line end, read as /^(tchar+) +([^ ]+) +HTTP\/(\d)\.(\d) *$/
 * would read it: method in [from, line.a), target in [line.b, line.c), line.major, line.minor.
 */
function requestLine(buf: Buffer, from: number, to: number): boolean {
  let i = from
  while (i < to && TCHAR[buf[i]!] === 1) i++
  if (i === from || i >= to || buf[i] !== SP) return false
  line.a = i
  while (i < to && buf[i] === SP) i++
  const target = i
  i = buf.indexOf(SP, i)                                          // targets can be long (presigned URLs): memchr
  if (i < 0 || i >= to || i === target) return false
  line.b = target
  line.c = i
  while (i < to && buf[i] === SP) i++
  if (to - i < 8 || !isVersion(buf, i)) return false
  line.major = buf[i + 5]! - 0x30
  line.minor = buf[i + 7]! - 0x30
  for (i += 8; i < to; i++) if (buf[i] !== SP) return false
  return true
}

/**
 * A status line, buf[from, to) without its line end, read as /^HTTP\/(\d)\.(\d) +(\d{3})(?: (.*))?$/
 * would read it: line.major, line.minor, line.status, reason in [line.a, line.b).
 */
function statusLine(buf: Buffer, from: number, to: number): boolean {
  if (to - from < 8 || !isVersion(buf, from)) return false
  let i = from + 8
  if (i >= to || buf[i] !== SP) return false
  while (i < to && buf[i] === SP) i++
  if (to - i < 3 || !isDigit(buf[i]) || !isDigit(buf[i + 1]) || !isDigit(buf[i + 2])) return false
  line.status = (buf[i]! - 0x30) * 100 + (buf[i + 1]! - 0x30) * 10 + (buf[i + 2]! - 0x30)
  i += 3
  if (i === to) line.a = to
  else if (buf[i] !== SP) return false
  else {
    line.a = i + 1
    for (let k = i + 1; k < to; k++) if (buf[k] === CR) return false     // `.` stops at a line terminator
  }
  line.b = to
  line.major = buf[from + 5]! - 0x30
  line.minor = buf[from + 7]! - 0x30
  return true
}

/** The method in buf[from, to): a shared string for the usual ones. */
function methodOf(buf: Buffer, from: number, to: number): string {
  for (const m of METHODS) {
    if (m.length !== to - from) continue
    let k = 0
    while (k < m.length && buf[from + k] === m.charCodeAt(k)) k++
    if (k === m.length) return m
  }
  return buf.toString('latin1', from, to)
}

/** Why the start line at buf[0] (its line end included) is not an HTTP/1.x one, as parseHead words it; else undefined. */
function startLineProblem(buf: Buffer, kind: 'request' | 'response'): string | undefined {
  const lf = buf.indexOf(LF)
  const to = lf > 0 && buf[lf - 1] === CR ? lf - 1 : lf
  if (kind === 'request' ? !requestLine(buf, 0, to) : !statusLine(buf, 0, to)) return `bad ${kind === 'request' ? 'request' : 'status'} line`
  if (line.major !== 1) return `unsupported version HTTP/${line.major}.${line.minor}`
  return undefined
}

/** The fields of a head, as parsed from its bytes (`from`: the end of the start line). */
function parseFields(raw: Buffer, from: number): HeaderField[] {
  const text = raw.toString('latin1')
  const fields: HeaderField[] = []
  let pos = from
  for (;;) {
    const lf = text.indexOf('\n', pos)
    if (lf < 0) break
    const end = lf > pos && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf
    if (end === pos) break
    const first = text.charCodeAt(pos)
    if ((first === SP || first === HT) && fields.length > 0) {
      const prev = fields[fields.length - 1]!                    // obs-fold: continues the previous value
      const more = text.slice(pos, end).trim()
      fields[fields.length - 1] = { ...prev, value: prev.value === '' ? more : more === '' ? prev.value : `${prev.value} ${more}`, end: lf + 1 }
    } else {
      const colon = text.indexOf(':', pos)
      let nameEnd = colon
      while (nameEnd > pos && (text.charCodeAt(nameEnd - 1) === SP || text.charCodeAt(nameEnd - 1) === HT)) nameEnd--
      if (colon > 0 && colon < end && nameEnd > pos && isToken(text, pos, nameEnd)) {
        const name = text.slice(pos, nameEnd)
        fields.push({ name, lower: name.toLowerCase(), value: text.slice(colon + 1, end).trim(), start: pos, end: lf + 1 })
      } else fields.push({ name: '', lower: '', value: '', start: pos, end: lf + 1 })  // not a field: passed on untouched
    }
    pos = lf + 1
  }
  return fields
}

/** Where the empty line after `fields` starts; -1 when there is none. */
function fieldsEndOf(fields: readonly HeaderField[], raw: Buffer, startEnd: number): number {
  const pos = fields.length === 0 ? startEnd : fields[fields.length - 1]!.end
  const lf = raw.indexOf(LF, pos)
  return lf === pos || (lf === pos + 1 && raw[pos] === CR) ? pos : -1
}

/** Whether raw[from, to), without the spaces and tabs around it, is `word` (lower case) in any case. */
function valueIs(raw: Buffer, from: number, to: number, word: string): boolean {
  while (from < to && (raw[from] === SP || raw[from] === HT)) from++
  while (to > from && (raw[to - 1] === SP || raw[to - 1] === HT)) to--
  return to - from === word.length && nameIs(raw, from, word)
}

/** What framing needs from the fields, gathered one field at a time. */
class Framing {
  contentLength = -1
  codings = ''
  close = false
  keepAlive = false
  upgradeToken = false
  hasUpgrade = false
  expectContinue = false
  /** The first Host field's value: buf[hostFrom, hostTo) of the head's buffer, or -1; or, for folded heads, the string. */
  hostFrom = -1
  hostTo = -1
  hostValue: string | undefined = undefined
  error: string | undefined = undefined

  reset(): void {
    this.hostFrom = this.hostTo = -1
    this.hostValue = undefined
    this.contentLength = -1
    this.codings = ''
    this.close = this.keepAlive = this.upgradeToken = this.hasUpgrade = this.expectContinue = false
    this.error = undefined
  }
  contentLengthField(value: string): void {
    if (this.error !== undefined) return
    for (const part of value.split(',')) {
      const v = part.trim()
      if (!/^\d+$/.test(v)) { this.error = 'bad content-length'; return }
      const n = Number(v.replace(/^0+(?=\d)/, ''))
      if (!(n <= MAX_LENGTH)) { this.error = 'content-length too large'; return }
      this.contentLengthValue(n)
      if (this.error !== undefined) return
    }
  }
  contentLengthValue(n: number): void {
    if (this.error !== undefined) return
    if (this.contentLength >= 0 && n !== this.contentLength) { this.error = 'conflicting content-length'; return }
    this.contentLength = n
  }
  connectionField(value: string): void {
    for (const part of value.split(',')) {
      const v = part.trim().toLowerCase()
      if (v === 'close') this.close = true
      else if (v === 'keep-alive') this.keepAlive = true
      else if (v === 'upgrade') this.upgradeToken = true
    }
  }
  field(lower: string, value: string): void {
    switch (lower) {
      case 'content-length': this.contentLengthField(value); break
      case 'transfer-encoding': this.codings = this.codings === '' ? value : `${this.codings},${value}`; break
      case 'connection': this.connectionField(value); break
      case 'upgrade': this.hasUpgrade = true; break
      case 'expect': if (value.toLowerCase() === '100-continue') this.expectContinue = true; break
      case 'host': this.hostValue ??= value; break
    }
  }
  /** A framing field `name` with its value in raw[from, to): the usual values are read from the bytes. */
  fieldBytes(name: string, raw: Buffer, from: number, to: number): void {
    switch (name) {
      case 'content-length': {
        const v = plainLength(raw, from, to)
        if (v >= 0) { this.contentLengthValue(v); return }
        break
      }
      case 'connection':
        if (valueIs(raw, from, to, 'keep-alive')) { this.keepAlive = true; return }
        if (valueIs(raw, from, to, 'close')) { this.close = true; return }
        break
      case 'transfer-encoding':
        if (this.codings === '' && valueIs(raw, from, to, 'chunked')) { this.codings = 'chunked'; return }
        break
      case 'host':
        if (this.hostFrom < 0) { this.hostFrom = from; this.hostTo = to }
        return
    }
    this.field(name, raw.toString('latin1', from, to).trim())
  }
}

/**
 * A Content-Length value that is digits between spaces and tabs, at most 15 of them after any leading
 * zeros (node reads `0000000000000000` as 0), read from the bytes; else -1 (then read as a string).
 */
function plainLength(raw: Buffer, from: number, to: number): number {
  while (from < to && (raw[from] === SP || raw[from] === HT)) from++
  while (to > from && (raw[to - 1] === SP || raw[to - 1] === HT)) to--
  while (to - from > 1 && raw[from] === 0x30) from++
  if (to === from || to - from > 15) return -1
  let n = 0
  for (let k = from; k < to; k++) {
    const d = raw[k]! - 0x30
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** Whether raw[from, from + name.length) is `name` (lower case) in any case. */
function nameIs(raw: Buffer, from: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    const c = raw[from + k]!
    const t = name.charCodeAt(k)
    if (c !== t && (t < 0x61 || c + 0x20 !== t)) return false      // letters in any case, `-` as is
  }
  return true
}

/**
 * If the line buf[pos, lineEnd) is the field `name` (lower case; in any case on the wire): its name, spaces
 * or tabs, then the line's first colon. Then the field is read into f.
 */
function framingField(f: Framing, buf: Buffer, pos: number, lineEnd: number, name: string): boolean {
  if (lineEnd - pos <= name.length || !nameIs(buf, pos, name)) return false
  let k = pos + name.length
  while (k < lineEnd && (buf[k] === SP || buf[k] === HT)) k++
  if (k === lineEnd || buf[k] !== COLON) return false
  f.fieldBytes(name, buf, k + 1, lineEnd)
  return true
}

/** How a Framing's connection tokens are kept on a head: three bits. */
const CLOSE = 1
const KEEP_ALIVE = 2
const UPGRADE = 4
const connectionBits = (f: Framing): number => (f.close ? CLOSE : 0) | (f.keepAlive ? KEEP_ALIVE : 0) | (f.upgradeToken ? UPGRADE : 0)
const connectionOf = (bits: number) => ({ close: (bits & CLOSE) !== 0, keepAlive: (bits & KEEP_ALIVE) !== 0, upgrade: (bits & UPGRADE) !== 0 })

/** buf[from, end), without a new view when that is all of buf. */
const slice = (buf: Buffer, from: number, end: number): Buffer => from === 0 && end === buf.length ? buf : buf.subarray(from, end)

// The two head classes share no base class: a derived constructor costs a generic construct call per head.
// Their head is buf[from, end): `raw` is sliced on first use, strings are read from the bytes when asked.

class ParsedRequest implements RequestHead {
  readonly kind = 'request' as const
  #buf: Buffer
  #from: number
  #end: number
  #raw: Buffer | undefined = undefined
  #fields: readonly HeaderField[] | undefined
  #connection: number
  #target: string | undefined = undefined
  #targetStart: number
  #targetEnd: number
  #hostFrom: number
  #hostTo: number
  #host: string | undefined
  constructor(
    buf: Buffer, from: number, end: number, readonly startEnd: number, readonly fieldsEnd: number, fields: readonly HeaderField[] | undefined,
    readonly version: string, readonly chunked: boolean, readonly otherCoding: boolean, readonly contentLength: number, f: Framing,
    readonly method: string, targetStart: number, targetEnd: number, readonly upgrade: boolean, readonly expectContinue: boolean,
    readonly keepAlive: boolean,
  ) {
    this.#buf = buf
    this.#from = from
    this.#end = end
    this.#fields = fields
    this.#connection = connectionBits(f)
    this.#targetStart = targetStart
    this.#targetEnd = targetEnd
    this.#hostFrom = f.hostFrom
    this.#hostTo = f.hostTo
    this.#host = f.hostValue
  }
  /** Read from the bytes on first use. */
  get host(): string | undefined {
    if (this.#host === undefined && this.#hostFrom >= 0) {
      this.#host = this.#buf.toString('latin1', this.#hostFrom, this.#hostTo).trim()
      this.#hostFrom = -1
    }
    return this.#host
  }
  get raw(): Buffer { return this.#raw ??= slice(this.#buf, this.#from, this.#end) }
  /** Built on first use: framing reads only the fields it needs. */
  get fields(): readonly HeaderField[] { return this.#fields ??= parseFields(this.raw, this.startEnd) }
  get connection(): { readonly close: boolean; readonly keepAlive: boolean; readonly upgrade: boolean } { return connectionOf(this.#connection) }
  /** Read from the bytes on first use: with no HTTP fault, nothing looks at it. */
  get target(): string { return this.#target ??= this.#buf.toString('latin1', this.#from + this.#targetStart, this.#from + this.#targetEnd) }
}

class ParsedResponse implements ResponseHead {
  readonly kind = 'response' as const
  #buf: Buffer
  #from: number
  #end: number
  #raw: Buffer | undefined = undefined
  #fields: readonly HeaderField[] | undefined
  #connection: number
  #reason: string | undefined = undefined
  #reasonStart: number
  #reasonEnd: number
  constructor(
    buf: Buffer, from: number, end: number, readonly startEnd: number, readonly fieldsEnd: number, fields: readonly HeaderField[] | undefined,
    readonly version: string, readonly chunked: boolean, readonly otherCoding: boolean, readonly contentLength: number, f: Framing,
    readonly status: number, reasonStart: number, reasonEnd: number,
  ) {
    this.#buf = buf
    this.#from = from
    this.#end = end
    this.#fields = fields
    this.#connection = connectionBits(f)
    this.#reasonStart = reasonStart
    this.#reasonEnd = reasonEnd
  }
  get raw(): Buffer { return this.#raw ??= slice(this.#buf, this.#from, this.#end) }
  get fields(): readonly HeaderField[] { return this.#fields ??= parseFields(this.raw, this.startEnd) }
  get connection(): { readonly close: boolean; readonly keepAlive: boolean; readonly upgrade: boolean } { return connectionOf(this.#connection) }
  get reason(): string { return this.#reason ??= this.#buf.toString('latin1', this.#from + this.#reasonStart, this.#from + this.#reasonEnd) }
}

/** The Framing of scanHead, reset for each head (parsing is synchronous, never re-entered). */
const framing = new Framing()

/** Parses a complete head; a string says why it cannot be framed. */
export function parseHead(raw: Buffer, kind: 'request' | 'response'): Head | string {
  return scanHead(raw, 0, kind, true)!
}

/**
 * Reads a head from buf[from]. `whole`: buf is the head (parseHead), and a string says why it cannot be
 * framed. Otherwise the head is the start of buf[from, …): null when that is not a head that frames
 * (incomplete, too large, folded, malformed: the framer's byte-at-a-time path then decides), and the
 * head's `raw` is a slice of buf up to its empty line included.
 */
function scanHead(buf: Buffer, from: number, kind: 'request' | 'response', whole: boolean): Head | string | null {
  const n = whole ? buf.length : Math.min(buf.length, from + MAX_HEAD_BYTES + 2)
  let lf = buf.indexOf(LF, from)
  if (lf < 0 || lf >= n) return whole ? 'no line end in head' : null
  const startEnd = lf + 1
  const f = framing
  f.reset()
  let fields: HeaderField[] | undefined
  let fieldsEnd = n
  let end = n
  // One pass over the field bytes: names are compared in place, values read only for the framing fields.
  // A folded line (obs-fold) continues a value: then the fields are parsed whole, as strings.
  let pos = startEnd
  for (;;) {
    if (pos >= n) return whole ? 'head without an empty line' : null
    const first = buf[pos]!
    if (first === SP || first === HT) {
      if (!whole) return null
      fields = parseFields(buf, startEnd)
      break
    }
    lf = buf.indexOf(LF, pos)                                    // memchr: values can be long (Authorization, Cookie)
    if (lf < 0 || lf >= n) return whole ? 'head without an empty line' : null
    const lineEnd = lf > pos && buf[lf - 1] === CR ? lf - 1 : lf
    if (lineEnd === pos) { fieldsEnd = pos; end = lf + 1; break }
    // Framing reads five fields: a line may be one of them only if it starts with one of their initials.
    switch (first | 0x20) {
      case 0x63: if (!framingField(f, buf, pos, lineEnd, 'content-length')) framingField(f, buf, pos, lineEnd, 'connection'); break
      case 0x74: framingField(f, buf, pos, lineEnd, 'transfer-encoding'); break
      case 0x75: framingField(f, buf, pos, lineEnd, 'upgrade'); break
      case 0x65: framingField(f, buf, pos, lineEnd, 'expect'); break
      case 0x68: if (f.hostFrom < 0) framingField(f, buf, pos, lineEnd, 'host'); break
    }
    pos = lf + 1
  }
  if (fields !== undefined) {
    fieldsEnd = fieldsEndOf(fields, buf, startEnd)
    if (fieldsEnd < 0) return 'head without an empty line'
    f.reset()                                                    // again, over the folded values
    for (const field of fields) f.field(field.lower, field.value)
  }
  if (f.error !== undefined) return whole ? f.error : null
  if (!whole && fieldsEnd - from > MAX_HEAD_BYTES) return null

  const codings = f.codings
  let chunked = false
  let otherCoding = false
  if (codings === 'chunked') chunked = true
  else if (codings !== '') {
    chunked = codings.split(',').at(-1)!.trim().toLowerCase() === 'chunked'
    otherCoding = codings.trim() !== '' && !chunked
  }
  const lineEnd = startLineEnd(buf, from, startEnd)
  if (whole) end = buf.length

  if (kind === 'request') {
    if (!requestLine(buf, from, lineEnd)) return whole ? 'bad request line' : null
    if (line.major !== 1) return whole ? `unsupported version HTTP/${line.major}.${line.minor}` : null
    if (otherCoding) return whole ? 'request transfer-encoding without chunked' : null
    const method = methodOf(buf, from, line.a)
    const version = VERSIONS[line.minor]!
    return new ParsedRequest(
      buf, from, end, startEnd - from, fieldsEnd - from, fields, version, chunked, otherCoding, chunked ? -1 : f.contentLength, f,
      method, line.b - from, line.c - from, method === 'CONNECT' || (f.hasUpgrade && f.upgradeToken), f.expectContinue,
      version === '1.0' ? f.keepAlive && !f.close : !f.close,
    )
  }
  if (!statusLine(buf, from, lineEnd)) return whole ? 'bad status line' : null
  if (line.major !== 1) return whole ? `unsupported version HTTP/${line.major}.${line.minor}` : null
  return new ParsedResponse(
    buf, from, end, startEnd - from, fieldsEnd - from, fields, VERSIONS[line.minor]!, chunked, otherCoding,
    chunked ? -1 : f.contentLength, f, line.status, line.a - from, line.b - from,
  )
}

/** The end of the start line that ends at startEnd (its LF included), without its line end. */
function startLineEnd(buf: Buffer, from: number, startEnd: number): number {
  return startEnd - 1 > from && buf[startEnd - 2] === CR ? startEnd - 2 : startEnd - 1
}

function isToken(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false
  return true
}

/** What the framer tells its user, in stream order. */
export interface FrameHandler {
  /** A complete head. `raw` is a slice of the chunk when the head arrived whole, else a copy. */
  head(head: Head, raw: Buffer): void
  /** Body bytes as on the wire (chunk sizes, extensions and trailers included): slices, never copies. */
  body(data: Buffer): void
  /** The message is complete (a 1xx response is a message of its own). */
  end(): void
  /** Bytes outside any message: blank lines between messages, a tunnel, or everything after an error. */
  raw(data: Buffer): void
  /** The stream cannot be framed from here on; what follows comes as `raw`. Called once. */
  error(reason: string): void
  /** Responses only: the method of the request this response answers (HEAD and CONNECT change framing). */
  requestMethod?(): string | undefined
  /**
   * Optional, for a user that hands bytes on as they came: when given, these are called instead of
   * head, body and raw, with where the bytes lie (`bytes[from, to)`, a chunk it was given or a copy)
   * rather than a slice of them; a head's `raw` is then sliced only if read.
   */
  headAt?(head: Head, bytes: Buffer, from: number, to: number): void
  bodyAt?(bytes: Buffer, from: number, to: number): void
  rawAt?(bytes: Buffer, from: number, to: number): void
}

const enum St {
  Start, Head, Fixed, ChunkSize, ChunkExt, ChunkSizeLF, ChunkData, ChunkDataCR, ChunkDataLF, Trailer, UntilClose, Wait, Raw, Done,
}

/** An incremental framer for one direction: requests (client → server) or responses. */
export class Framer {
  #st = St.Start
  #parts: Buffer[] = []
  #partsLen = 0
  #lineLen = 0
  #prev = 0
  #first = true
  #startChecked = false
  #method = 0         // request line: 0 in the method, 1 past it
  #remaining = 0
  #size = 0
  #digits = 0
  #ext = 0
  #trailer = 0
  #afterMessage: St = St.Start
  #rawAfterMessage = false
  #wait: Buffer[] = []
  #waitLen = 0
  #stopped = false
  #inMessage = false
  #reason: string | undefined

  constructor(readonly kind: 'request' | 'response', readonly handler: FrameHandler) {}

  /** Bytes the framer holds: a head not yet complete, or what came after an upgrade request. */
  get buffered(): number { return this.#partsLen + this.#waitLen }
  /** Between messages, nothing held: a response may be inserted here. */
  get idle(): boolean { return this.#st === St.Start && this.#partsLen === 0 }
  /** Passing bytes through unframed (after an error, an upgrade, a CONNECT). */
  get raw(): boolean { return this.#st === St.Raw }
  /** Waiting after an upgrade request for the response to say whether the stream is now a tunnel. */
  get waiting(): boolean { return this.#st === St.Wait }
  get inMessage(): boolean { return this.#inMessage }
  get failed(): string | undefined { return this.#reason }

  write(chunk: Buffer): void {
    let i = 0
    const n = chunk.length
    while (i < n && !this.#stopped) {
      switch (this.#st) {
        case St.Start: {
          let j = i
          while (j < n && (chunk[j] === CR || chunk[j] === LF)) j++
          this.#raw(chunk, i, j)
          i = j
          if (i < n) this.#startHead()
          break
        }
        case St.Head: i = this.#head(chunk, i); break
        case St.Fixed: {
          const k = Math.min(this.#remaining, n - i)
          this.#remaining -= k
          this.#body(chunk, i, i + k)
          i += k
          if (this.#remaining === 0) this.#messageEnd()
          break
        }
        case St.UntilClose: this.#body(chunk, i, n); i = n; break
        case St.Wait: {
          const rest = i === 0 ? chunk : chunk.subarray(i)
          this.#wait.push(rest); this.#waitLen += rest.length; i = n
          if (this.#waitLen > MAX_HEAD_BYTES) { this.#fail('too much data after an upgrade request'); this.#flushWait() }
          break
        }
        case St.Raw: this.#raw(chunk, i, n); i = n; break
        case St.Done: i = n; break
        default: i = this.#chunked(chunk, i)
      }
    }
  }

  /** The stream ended (FIN). A read-until-close body ends here; a partial head is handed on raw. */
  end(): void {
    if (this.#stopped) return
    const st = this.#st
    if (st === St.UntilClose) this.#messageEnd()
    else if (st === St.Head) this.#flushParts()
    else if (st === St.Wait) this.#flushWait()
    this.#st = St.Done
    this.#afterMessage = St.Done
  }

  /** Stop now: the link is gone. */
  stop(): void { this.#stopped = true; this.#parts = []; this.#partsLen = 0; this.#wait = []; this.#waitLen = 0 }

  /** After an upgrade request: the response was not a switch, so parse what came after it as HTTP. */
  proceed(): void {
    if (this.#st !== St.Wait) return
    this.#st = St.Start
    const held = this.#wait
    this.#wait = []
    this.#waitLen = 0
    for (const c of held) this.write(c)
  }

  /**
   * Between messages (from a handler's `end`): nothing more is framed or handed on, whatever comes. For
   * what follows a message that ended the connection, which the peer must not process (RFC 9112 §9.6).
   */
  discard(): void {
    this.#st = St.Done
    this.#afterMessage = St.Done
    this.#rawAfterMessage = false
  }

  /** From the next message boundary on (now, if between messages), everything is raw. */
  tunnel(): void {
    if (this.#st === St.Raw || this.#st === St.Done) return
    if (this.#st === St.Start || this.#st === St.Head || this.#st === St.Wait) {
      const st = this.#st
      this.#st = St.Raw
      if (st === St.Head) this.#flushParts()
      else if (st === St.Wait) this.#flushWait()
    } else this.#rawAfterMessage = true
  }

  #flushParts(): void {
    const parts = this.#parts
    this.#parts = []
    this.#partsLen = 0
    for (const p of parts) this.#raw(p, 0, p.length)
  }

  #flushWait(): void {
    const held = this.#wait
    this.#wait = []
    this.#waitLen = 0
    for (const c of held) if (!this.#stopped) this.#raw(c, 0, c.length)
  }

  #startHead(): void {
    this.#st = St.Head
    this.#lineLen = 0
    this.#prev = 0
    this.#first = true
    this.#startChecked = false
    this.#method = 0
  }

  /** Error: hand on what is held, then the rest of the stream, raw. */
  #fail(reason: string, chunk?: Buffer, from = 0): number {
    if (this.#reason === undefined) {
      this.#reason = reason
      this.handler.error(reason)
    }
    this.#st = St.Raw
    this.#inMessage = false
    this.#flushParts()
    if (chunk && !this.#stopped) this.#raw(chunk, from, chunk.length)
    return chunk ? chunk.length : 0
  }

  #head(chunk: Buffer, i: number): number {
    if (this.#parts.length === 0) {
      // The head starts in this chunk: read it in one pass if it is all here and frames (the usual
      // case); else the byte-at-a-time path below decides, and gives the same result.
      const head = scanHead(chunk, i, this.kind, false)
      if (head !== null && typeof head !== 'string') {
        const end = i + head.fieldsEnd + (chunk[i + head.fieldsEnd] === CR ? 2 : 1)    // past the empty line
        this.#deliver(head, chunk, i, end)
        return end
      }
    }
    const start = i
    const n = chunk.length
    let j = i
    for (;;) {
      let lf = j                                                 // a loop: head lines are short, a call costs more
      while (lf < n && chunk[lf] !== LF) lf++
      const stop = lf
      if (lf === n) lf = -1
      if (this.#first) {
        // Fail fast on what is not HTTP (TLS, binary protocols): check the start of the first line.
        const bad = this.kind === 'request' ? this.#badMethod(chunk, j, stop) : this.#badVersion(chunk, j, stop)
        if (bad) return this.#fail(this.kind === 'request' ? 'not an HTTP request' : 'not an HTTP response', chunk, start)
        if (lf >= 0) this.#first = false
      }
      if (lf < 0) {
        this.#lineLen += n - j
        if (n > j) this.#prev = chunk[n - 1]!
        break
      }
      const len = this.#lineLen + (lf - j)
      const cr = lf > j ? chunk[lf - 1] === CR : this.#prev === CR
      this.#lineLen = 0
      this.#prev = LF
      j = lf + 1
      if (len === 0 || (len === 1 && cr)) return this.#headDone(chunk, start, j)
      if (this.#partsLen + (j - start) > MAX_HEAD_BYTES) return this.#fail('head too large', chunk, start)
    }
    if (this.#partsLen + (n - start) > MAX_HEAD_BYTES) return this.#fail('head too large', chunk, start)
    if (!this.#first && !this.#startChecked) {
      // The head goes on in a later chunk: check the start line now, so that a peer that is not
      // speaking HTTP/1.x (HTTP/0.9, a line-based protocol) is not held waiting for an empty line.
      this.#startChecked = true
      const first = this.#parts.length === 0 ? chunk.subarray(start) : Buffer.concat([...this.#parts, chunk.subarray(start)])
      const problem = startLineProblem(first, this.kind)
      if (problem !== undefined) return this.#fail(problem, chunk, start)
    }
    const rest = start === 0 ? chunk : chunk.subarray(start)
    this.#parts.push(rest)
    this.#partsLen += rest.length
    return n
  }

  #badMethod(chunk: Buffer, from: number, to: number): boolean {
    if (this.#method !== 0) return false
    for (let k = from; k < to; k++) {
      const c = chunk[k]!
      if (c === SP) { if (k === from && this.#lineLen === 0 && this.#partsLen === 0) return true; this.#method = 1; return false }
      if (TCHAR[c] !== 1) return true
    }
    return to < chunk.length                                   // a line end inside the method
  }

  #badVersion(chunk: Buffer, from: number, to: number): boolean {
    const seen = this.#lineLen                                 // bytes of the first line before `from`
    for (let k = from; k < to && seen + (k - from) < 5; k++) {
      if (chunk[k] !== 'HTTP/'.charCodeAt(seen + k - from)) return true
    }
    return false
  }

  #headDone(chunk: Buffer, start: number, end: number): number {
    let raw: Buffer
    if (this.#parts.length === 0) raw = chunk.subarray(start, end)
    else {
      this.#parts.push(chunk.subarray(start, end))
      raw = Buffer.concat(this.#parts, this.#partsLen + end - start)
    }
    const head = parseHead(raw, this.kind)
    if (typeof head === 'string') {
      if (this.#parts.length === 0) return this.#fail(head, chunk, start)
      this.#parts.pop()
      return this.#fail(head, chunk, start)
    }
    this.#deliver(head, raw, 0, raw.length)
    return end
  }

  /** A head was read: it is bytes[from, to). */
  #deliver(head: Head, bytes: Buffer, from: number, to: number): void {
    if (this.#parts.length > 0) this.#parts = []
    this.#partsLen = 0
    this.#inMessage = true
    const h = this.handler
    if (h.headAt) h.headAt(head, bytes, from, to)
    else h.head(head, head.raw)
    if (this.#stopped) return
    this.#frameBody(head)
  }

  /** Body bytes bytes[from, to), if any. */
  #body(bytes: Buffer, from: number, to: number): void {
    if (to <= from) return
    const h = this.handler
    if (h.bodyAt) h.bodyAt(bytes, from, to)
    else h.body(from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to))
  }

  /** Bytes outside messages bytes[from, to), if any. */
  #raw(bytes: Buffer, from: number, to: number): void {
    if (to <= from) return
    const h = this.handler
    if (h.rawAt) h.rawAt(bytes, from, to)
    else h.raw(from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to))
  }

  #frameBody(head: Head): void {
    this.#afterMessage = St.Start
    if (head.kind === 'request') {
      if (head.upgrade) this.#afterMessage = St.Wait
      if (head.chunked) return this.#startChunked()
      if (head.contentLength > 0) { this.#remaining = head.contentLength; this.#st = St.Fixed; return }
      return this.#messageEnd()
    }
    const s = head.status
    const method = this.handler.requestMethod?.()
    if (s === 101 || (method === 'CONNECT' && s >= 200 && s < 300)) {
      this.#afterMessage = St.Raw
      return this.#messageEnd()
    }
    if (s < 200 || s === 204 || s === 304 || method === 'HEAD') return this.#messageEnd()
    if (head.chunked) return this.#startChunked()
    if (head.otherCoding) { this.#st = St.UntilClose; return }
    if (head.contentLength >= 0) {
      if (head.contentLength === 0) return this.#messageEnd()
      this.#remaining = head.contentLength
      this.#st = St.Fixed
      return
    }
    this.#st = St.UntilClose
  }

  #startChunked(): void {
    this.#st = St.ChunkSize
    this.#size = 0
    this.#digits = 0
  }

  #messageEnd(): void {
    this.#inMessage = false
    this.#st = this.#rawAfterMessage ? St.Raw : this.#afterMessage
    this.#rawAfterMessage = false
    this.handler.end()
    if (this.#st === St.Raw && this.#waitLen > 0) this.#flushWait()
  }

  /** The chunked states: one body slice per call, up to the end of the message or of the chunk. */
  #chunked(chunk: Buffer, i: number): number {
    const n = chunk.length
    const from = i
    while (i < n) {
      switch (this.#st) {
        case St.ChunkSize: {
          const c = chunk[i]!
          const h = HEX[c]!
          if (h >= 0) {
            this.#digits++                                          // any number of leading zeros, as llhttp
            this.#size = this.#size * 16 + h
            if (this.#size > MAX_LENGTH) { this.#body(chunk, from, i); return this.#fail('chunk size too large', chunk, i) }
            i++
          } else if (this.#digits === 0) {
            this.#body(chunk, from, i); return this.#fail('bad chunk size', chunk, i)
          } else if (c === CR) { this.#st = St.ChunkSizeLF; i++ }
          else if (c === LF) { i++; this.#sizeLineDone() }
          else if (c === 0x3b /* ; */ || c === SP || c === HT) { this.#st = St.ChunkExt; this.#ext = 0 }
          else { this.#body(chunk, from, i); return this.#fail('bad chunk size', chunk, i) }
          break
        }
        case St.ChunkExt: {
          const lf = chunk.indexOf(LF, i)
          const stop = lf < 0 ? n : lf
          this.#ext += stop - i
          if (this.#ext > MAX_HEAD_BYTES) { this.#body(chunk, from, stop); return this.#fail('chunk extension too large', chunk, stop) }
          if (lf < 0) { i = n; break }
          i = lf + 1
          this.#sizeLineDone()
          break
        }
        case St.ChunkSizeLF:
          if (chunk[i] !== LF) { this.#body(chunk, from, i); return this.#fail('bad chunk size line', chunk, i) }
          i++
          this.#sizeLineDone()
          break
        case St.ChunkData: {
          const k = Math.min(this.#remaining, n - i)
          this.#remaining -= k
          i += k
          if (this.#remaining === 0) this.#st = St.ChunkDataCR
          break
        }
        case St.ChunkDataCR: {
          const c = chunk[i]
          if (c === CR) { this.#st = St.ChunkDataLF; i++ }
          else if (c === LF) { this.#startChunked(); i++ }
          else { this.#body(chunk, from, i); return this.#fail('missing line end after chunk data', chunk, i) }
          break
        }
        case St.ChunkDataLF:
          if (chunk[i] !== LF) { this.#body(chunk, from, i); return this.#fail('missing line end after chunk data', chunk, i) }
          this.#startChunked()
          i++
          break
        case St.Trailer: {
          const lf = chunk.indexOf(LF, i)
          if (lf < 0) {
            this.#lineLen += n - i
            this.#trailer += n - i
            if (n > i) this.#prev = chunk[n - 1]!
            if (this.#trailer > MAX_HEAD_BYTES) { this.#body(chunk, from, n); return this.#fail('trailers too large', chunk, n) }
            i = n
            break
          }
          const len = this.#lineLen + (lf - i)
          const cr = lf > i ? chunk[lf - 1] === CR : this.#prev === CR
          this.#trailer += lf + 1 - i
          this.#lineLen = 0
          this.#prev = LF
          i = lf + 1
          if (len === 0 || (len === 1 && cr)) {
            this.#body(chunk, from, i)
            this.#messageEnd()
            return i
          }
          if (this.#trailer > MAX_HEAD_BYTES) { this.#body(chunk, from, i); return this.#fail('trailers too large', chunk, i) }
          break
        }
        default:
          this.#body(chunk, from, i)
          return i
      }
    }
    this.#body(chunk, from, n)
    return n
  }

  #sizeLineDone(): void {
    if (this.#size === 0) {
      this.#st = St.Trailer
      this.#lineLen = 0
      this.#prev = LF
      this.#trailer = 0
    } else {
      this.#st = St.ChunkData
      this.#remaining = this.#size
    }
  }
}
