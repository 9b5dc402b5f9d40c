// An incremental HTTP/1.x framer: it finds message boundaries in a byte stream and hands on slices of
// the chunks it is given, never copying a body. It parses heads (start line and fields) and frames
// bodies (Content-Length, chunked with extensions and trailers, read-until-close); it does not
// validate more than framing needs. What it cannot frame it reports once (`error`) and hands on as
// `raw` from there on: no byte is ever lost or reordered.

export const MAX_HEAD_BYTES = 64 * 1024
export const MAX_HEADER_FIELDS = 1000

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
}

export interface ResponseHead extends HeadBase {
  readonly kind: 'response'
  readonly status: number
  readonly reason: string
}

export type Head = RequestHead | ResponseHead

const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([^ ]+) +HTTP\/(\d)\.(\d) *$/
const STATUS_LINE = /^HTTP\/(\d)\.(\d) +(\d{3})(?: (.*))?$/
const COLON = 0x3a
/** `1.0` … `1.9`, so that a head does not build its version string. */
const VERSIONS = Array.from({ length: 10 }, (_, d) => `1.${d}`)

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

/** What framing needs from the fields, gathered one field at a time. */
class Framing {
  contentLength = -1
  codings = ''
  close = false
  keepAlive = false
  upgradeToken = false
  hasUpgrade = false
  expectContinue = false
  error: string | undefined = undefined

  contentLengthField(value: string): void {
    if (this.error !== undefined) return
    for (const part of value.split(',')) {
      const v = part.trim()
      if (!/^\d{1,15}$/.test(v)) { this.error = 'bad content-length'; return }
      this.contentLengthValue(Number(v))
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
    }
  }
}

/** A Content-Length value that is 1 to 15 digits between spaces and tabs, read from the bytes; else -1. */
function plainLength(raw: Buffer, from: number, to: number): number {
  while (from < to && (raw[from] === SP || raw[from] === HT)) from++
  while (to > from && (raw[to - 1] === SP || raw[to - 1] === HT)) to--
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

const FIELD_OF_LENGTH: (string | undefined)[] = []
for (const n of ['content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect']) FIELD_OF_LENGTH[n.length] = n


abstract class ParsedHead {
  #fields: readonly HeaderField[] | undefined
  readonly #close: boolean
  readonly #keepAlive: boolean
  readonly #upgrade: boolean
  constructor(
    readonly raw: Buffer, readonly startEnd: number, readonly fieldsEnd: number, fields: readonly HeaderField[] | undefined,
    readonly version: string, readonly chunked: boolean, readonly otherCoding: boolean, readonly contentLength: number, f: Framing,
  ) {
    this.#fields = fields
    this.#close = f.close
    this.#keepAlive = f.keepAlive
    this.#upgrade = f.upgradeToken
  }
  /** Built on first use: framing reads only the fields it needs. */
  get fields(): readonly HeaderField[] { return this.#fields ??= parseFields(this.raw, this.startEnd) }
  get connection(): { readonly close: boolean; readonly keepAlive: boolean; readonly upgrade: boolean } {
    return { close: this.#close, keepAlive: this.#keepAlive, upgrade: this.#upgrade }
  }
}

class ParsedRequest extends ParsedHead implements RequestHead {
  readonly kind = 'request' as const
  constructor(
    raw: Buffer, startEnd: number, fieldsEnd: number, fields: readonly HeaderField[] | undefined, version: string,
    chunked: boolean, otherCoding: boolean, contentLength: number, f: Framing,
    readonly method: string, readonly target: string, readonly upgrade: boolean, readonly expectContinue: boolean, readonly keepAlive: boolean,
  ) { super(raw, startEnd, fieldsEnd, fields, version, chunked, otherCoding, contentLength, f) }
}

class ParsedResponse extends ParsedHead implements ResponseHead {
  readonly kind = 'response' as const
  constructor(
    raw: Buffer, startEnd: number, fieldsEnd: number, fields: readonly HeaderField[] | undefined, version: string,
    chunked: boolean, otherCoding: boolean, contentLength: number, f: Framing,
    readonly status: number, readonly reason: string,
  ) { super(raw, startEnd, fieldsEnd, fields, version, chunked, otherCoding, contentLength, f) }
}

/** Parses a complete head; a string says why it cannot be framed. */
export function parseHead(raw: Buffer, kind: 'request' | 'response'): Head | string {
  const n = raw.length
  let lf = raw.indexOf(LF)
  if (lf < 0) return 'no line end in head'
  const startEnd = lf + 1
  let f = new Framing()
  let fields: HeaderField[] | undefined
  let fieldsEnd = n
  let lines = 0
  // One pass over the field bytes: names are compared in place, values read only for the framing fields.
  // A folded line (obs-fold) continues a value: then the fields are parsed whole, as strings.
  let pos = startEnd
  for (;;) {
    if (pos >= n) return 'head without an empty line'
    const first = raw[pos]!
    if (first === SP || first === HT) { fields = parseFields(raw, startEnd); break }
    let k = pos
    let c = first
    while (c !== COLON && c !== LF && ++k < n) c = raw[k]!
    if (k >= n) return 'head without an empty line'
    const colon = c === COLON ? k : -1
    lf = k
    while (c !== LF && ++lf < n) c = raw[lf]!
    if (lf >= n) return 'head without an empty line'
    const end = lf > pos && raw[lf - 1] === CR ? lf - 1 : lf
    if (end === pos) { fieldsEnd = pos; break }
    lines++
    if (colon >= 0 && colon < end) {
      let nameEnd = colon
      while (nameEnd > pos && (raw[nameEnd - 1] === SP || raw[nameEnd - 1] === HT)) nameEnd--
      const name = FIELD_OF_LENGTH[nameEnd - pos]
      if (name !== undefined && nameIs(raw, pos, name)) {
        const v = name === 'content-length' ? plainLength(raw, colon + 1, end) : -1
        if (v >= 0) f.contentLengthValue(v)
        else f.field(name, raw.toString('latin1', colon + 1, end).trim())
      }
    }
    pos = lf + 1
  }
  if (fields !== undefined) {
    fieldsEnd = fieldsEndOf(fields, raw, startEnd)
    if (fieldsEnd < 0) return 'head without an empty line'
    lines = fields.length
    f = new Framing()                                            // again, over the folded values
    for (const field of fields) f.field(field.lower, field.value)
  }
  if (lines > MAX_HEADER_FIELDS) return 'too many header fields'
  if (f.error !== undefined) return f.error

  const codings = f.codings
  const lastCoding = codings === '' ? '' : codings.split(',').at(-1)!.trim().toLowerCase()
  const chunked = lastCoding === 'chunked'
  const otherCoding = codings.trim() !== '' && !chunked
  const startLine = raw.toString('latin1', 0, startEnd > 1 && raw[startEnd - 2] === CR ? startEnd - 2 : startEnd - 1)

  if (kind === 'request') {
    const m = REQUEST_LINE.exec(startLine)
    if (!m) return 'bad request line'
    if (m[3] !== '1') return `unsupported version HTTP/${m[3]}.${m[4]}`
    if (otherCoding) return 'request transfer-encoding without chunked'
    const method = m[1]!
    const version = VERSIONS[m[4]!.charCodeAt(0) - 0x30]!
    return new ParsedRequest(
      raw, startEnd, fieldsEnd, fields, version, chunked, otherCoding, chunked ? -1 : f.contentLength, f,
      method, m[2]!, method === 'CONNECT' || (f.hasUpgrade && f.upgradeToken), f.expectContinue,
      version === '1.0' ? f.keepAlive && !f.close : !f.close,
    )
  }
  const m = STATUS_LINE.exec(startLine)
  if (!m) return 'bad status line'
  if (m[1] !== '1') return `unsupported version HTTP/${m[1]}.${m[2]}`
  return new ParsedResponse(
    raw, startEnd, fieldsEnd, fields, VERSIONS[m[2]!.charCodeAt(0) - 0x30]!, chunked, otherCoding,
    chunked ? -1 : f.contentLength, f, Number(m[3]), m[4] ?? '',
  )
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
  #lines = 0
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
          if (j > i) this.handler.raw(chunk.subarray(i, j))
          i = j
          if (i < n) this.#startHead()
          break
        }
        case St.Head: i = this.#head(chunk, i); break
        case St.Fixed: {
          const k = Math.min(this.#remaining, n - i)
          this.#remaining -= k
          this.handler.body(chunk.subarray(i, i + k))
          i += k
          if (this.#remaining === 0) this.#messageEnd()
          break
        }
        case St.UntilClose: this.handler.body(i === 0 ? chunk : chunk.subarray(i)); i = n; break
        case St.Wait: {
          const rest = i === 0 ? chunk : chunk.subarray(i)
          this.#wait.push(rest); this.#waitLen += rest.length; i = n
          if (this.#waitLen > MAX_HEAD_BYTES) { this.#fail('too much data after an upgrade request'); this.#flushWait() }
          break
        }
        case St.Raw: this.handler.raw(i === 0 ? chunk : chunk.subarray(i)); i = n; break
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
    for (const p of parts) this.handler.raw(p)
  }

  #flushWait(): void {
    const held = this.#wait
    this.#wait = []
    this.#waitLen = 0
    for (const c of held) if (!this.#stopped) this.handler.raw(c)
  }

  #startHead(): void {
    this.#st = St.Head
    this.#lineLen = 0
    this.#prev = 0
    this.#lines = 0
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
    if (chunk && from < chunk.length && !this.#stopped) this.handler.raw(chunk.subarray(from))
    return chunk ? chunk.length : 0
  }

  #head(chunk: Buffer, i: number): number {
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
      if (++this.#lines > MAX_HEADER_FIELDS + 1) return this.#fail('too many header fields', chunk, start)
      if (this.#partsLen + (j - start) > MAX_HEAD_BYTES) return this.#fail('head too large', chunk, start)
    }
    if (this.#partsLen + (n - start) > MAX_HEAD_BYTES) return this.#fail('head too large', chunk, start)
    if (!this.#first && !this.#startChecked) {
      // The head goes on in a later chunk: check the start line now, so that a peer that is not
      // speaking HTTP/1.x (HTTP/0.9, a line-based protocol) is not held waiting for an empty line.
      this.#startChecked = true
      const line = this.#parts.length === 0 ? chunk.subarray(start) : Buffer.concat([...this.#parts, chunk.subarray(start)])
      const lf = line.indexOf(LF)
      const text = line.toString('latin1', 0, lf > 0 && line[lf - 1] === CR ? lf - 1 : lf)
      const m = (this.kind === 'request' ? REQUEST_LINE : STATUS_LINE).exec(text)
      if (!m || m[this.kind === 'request' ? 3 : 1] !== '1') return this.#fail(`bad ${this.kind === 'request' ? 'request' : 'status'} line`, chunk, start)
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
    this.#parts = []
    this.#partsLen = 0
    this.#inMessage = true
    this.handler.head(head, raw)
    if (this.#stopped) return end
    this.#frameBody(head)
    return end
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
    const body = (to: number) => { if (to > from) this.handler.body(chunk.subarray(from, to)) }
    while (i < n) {
      switch (this.#st) {
        case St.ChunkSize: {
          const c = chunk[i]!
          const h = HEX[c]!
          if (h >= 0) {
            if (++this.#digits > 15) { body(i); return this.#fail('chunk size too large', chunk, i) }
            this.#size = this.#size * 16 + h
            i++
          } else if (this.#digits === 0) {
            body(i); return this.#fail('bad chunk size', chunk, i)
          } else if (c === CR) { this.#st = St.ChunkSizeLF; i++ }
          else if (c === LF) { i++; this.#sizeLineDone() }
          else if (c === 0x3b /* ; */ || c === SP || c === HT) { this.#st = St.ChunkExt; this.#ext = 0 }
          else { body(i); return this.#fail('bad chunk size', chunk, i) }
          break
        }
        case St.ChunkExt: {
          const lf = chunk.indexOf(LF, i)
          const stop = lf < 0 ? n : lf
          this.#ext += stop - i
          if (this.#ext > MAX_HEAD_BYTES) { body(stop); return this.#fail('chunk extension too large', chunk, stop) }
          if (lf < 0) { i = n; break }
          i = lf + 1
          this.#sizeLineDone()
          break
        }
        case St.ChunkSizeLF:
          if (chunk[i] !== LF) { body(i); return this.#fail('bad chunk size line', chunk, i) }
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
          else { body(i); return this.#fail('missing line end after chunk data', chunk, i) }
          break
        }
        case St.ChunkDataLF:
          if (chunk[i] !== LF) { body(i); return this.#fail('missing line end after chunk data', chunk, i) }
          this.#startChunked()
          i++
          break
        case St.Trailer: {
          const lf = chunk.indexOf(LF, i)
          if (lf < 0) {
            this.#lineLen += n - i
            this.#trailer += n - i
            if (n > i) this.#prev = chunk[n - 1]!
            if (this.#trailer > MAX_HEAD_BYTES) { body(n); return this.#fail('trailers too large', chunk, n) }
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
            body(i)
            this.#messageEnd()
            return i
          }
          if (this.#trailer > MAX_HEAD_BYTES) { body(i); return this.#fail('trailers too large', chunk, i) }
          break
        }
        default:
          body(i)
          return i
      }
    }
    body(n)
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
