// PostgreSQL's frontend/backend protocol (v3), framed incrementally in one direction: where each message
// starts and ends in the byte stream, and the first bytes of the bodies a layer needs to read (a query's
// SQL, a Parse's statement, an ErrorResponse's fields, a ReadyForQuery's status). Bodies are skipped by
// arithmetic past what is captured; nothing is changed.
//
// The client's first messages have no type byte (Int32 length, Int32 code): StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest. After a StartupMessage every message both ways is a type byte, an Int32
// length (counting itself) and the body.

export const PROTOCOL_3 = 196608
export const SSL_REQUEST = 80877103
export const GSSENC_REQUEST = 80877104
export const CANCEL_REQUEST = 80877102

/** Body bytes captured before a message's head is reported (a longer query is matched on its first 64 KiB). */
export const MAX_CAPTURE = 64 * 1024
/** The longest message PostgreSQL itself accepts (1 GiB) and the longest startup-phase message (10,000 bytes). */
const MAX_MESSAGE = 0x40000000
const MAX_STARTUP = 10_000

const EMPTY = Buffer.alloc(0)

export interface PgHandler {
  /**
   * A message's type (0 for a startup-phase message, `code` then its code) and the first bytes of its body
   * (as many as `capture(type)` asked, or the whole body if shorter) are known, at offset `at` of the chunk.
   */
  head(type: number, body: Buffer, at: number, code: number): void
  /** The message ended at offset `at` of the chunk. */
  end(at: number): void
}

/**
 * One direction's framer. push() calls the handler at each head and end; it returns a message when the bytes
 * are not this protocol (the caller falls back to raw TCP from there on and never calls it again).
 */
export class PgScanner {
  #startup: boolean
  readonly #hdr = Buffer.alloc(8)
  #hdrLen = 0
  /** Body bytes left of the current message; -1: reading a header. */
  #left = -1
  #type = 0
  #code = 0
  /** Head bytes still to capture, and those captured. */
  #want = 0
  #cap: Buffer[] = []
  #headDone = true

  /** `startup`: the client's stream, whose first messages have no type byte. */
  constructor(startup: boolean, readonly capture: (type: number) => number, readonly handler: PgHandler) {
    this.#startup = startup
  }

  /** True between messages. */
  get atBoundary(): boolean { return this.#left < 0 && this.#hdrLen === 0 }

  push(chunk: Buffer): string | undefined {
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (this.#left < 0) {
        const need = this.#startup ? 8 : 5
        const take = Math.min(need - this.#hdrLen, n - i)
        chunk.copy(this.#hdr, this.#hdrLen, i, i + take)
        this.#hdrLen += take
        i += take
        if (this.#hdrLen < need) break
        this.#hdrLen = 0
        const err = this.#header()
        if (err) return err
        this.#cap = []
        this.#headDone = false
        if (this.#want === 0) this.#head(i)
        if (this.#left === 0) this.#end(i)
        continue
      }
      const take = Math.min(this.#left, n - i)
      if (!this.#headDone) {
        const keep = Math.min(take, this.#want)
        this.#cap.push(chunk.subarray(i, i + keep))
        this.#want -= keep
        if (this.#want === 0) this.#head(i + keep)
      }
      i += take
      this.#left -= take
      if (this.#left === 0) this.#end(i)
    }
    return undefined
  }

  #header(): string | undefined {
    let body: number
    if (this.#startup) {
      const len = this.#hdr.readInt32BE(0)
      if (len < 8 || len > MAX_STARTUP) return `a startup message of length ${len}`
      this.#type = 0
      this.#code = this.#hdr.readInt32BE(4)
      body = len - 8
    } else {
      const len = this.#hdr.readInt32BE(1)
      this.#type = this.#hdr[0]!
      if (len < 4 || len > MAX_MESSAGE) return `a message of type ${printable(this.#type)} of length ${len}`
      this.#code = 0
      body = len - 4
    }
    this.#left = body
    this.#want = Math.min(body, this.capture(this.#type))
    return undefined
  }

  #head(at: number): void {
    this.#headDone = true
    const cap = this.#cap
    this.#cap = []
    this.handler.head(this.#type, cap.length === 0 ? EMPTY : cap.length === 1 ? cap[0]! : Buffer.concat(cap), at, this.#code)
  }

  #end(at: number): void {
    this.#left = -1
    // after SSLRequest or GSSENCRequest answered `N`, the client sends its StartupMessage, still without a type byte
    if (this.#startup && this.#code !== SSL_REQUEST && this.#code !== GSSENC_REQUEST) this.#startup = false
    this.handler.end(at)
  }
}

const printable = (type: number) => (type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16)}`)

/** A C string at `from` (NUL-terminated; to the end if the NUL was not captured), and where the next field starts. */
export function cstring(body: Buffer, from: number): [string, number] {
  const nul = body.indexOf(0, from)
  const end = nul < 0 ? body.length : nul
  return [body.toString('utf8', from, end), end + 1]
}

/** A StartupMessage's parameters (user, database, application_name…). */
export function startupParams(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let at = 0
  while (at < body.length && body[at] !== 0) {
    const [k, next] = cstring(body, at)
    const [v, after] = cstring(body, next)
    out[k] = v
    at = after
  }
  return out
}

/** An ErrorResponse or NoticeResponse's fields by code byte: `C` the SQLSTATE, `V` the severity, `M` the message. */
export function errorFields(body: Buffer): Map<string, string> {
  const out = new Map<string, string>()
  let at = 0
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]!)
    const [v, next] = cstring(body, at + 1)
    out.set(code, v)
    at = next
  }
  return out
}

/** A backend message: type, length, body. */
function message(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = type.charCodeAt(0)
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

/** An ErrorResponse with severity (both the localized `S` and the fixed `V`), SQLSTATE and message. */
export function errorResponse(severity: string, code: string, text: string): Buffer {
  const parts: Buffer[] = []
  for (const [k, v] of [['S', severity], ['V', severity], ['C', code], ['M', text]] as const) parts.push(Buffer.from(`${k}${v}\0`, 'utf8'))
  parts.push(Buffer.from([0]))
  return message('E', Buffer.concat(parts))
}

/** ReadyForQuery with a transaction status: `I` idle, `T` in a transaction, `E` in a failed one. */
export function readyForQuery(status: string): Buffer {
  return message('Z', Buffer.from(status, 'latin1'))
}

/** A simple Query message. */
export function queryMessage(sql: string): Buffer {
  return message('Q', Buffer.from(`${sql}\0`, 'utf8'))
}

/** The first keyword of an SQL text, upper-cased, after whitespace, comments and opening parentheses ('' if none). */
export function statementOf(sql: string): string {
  const m = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*([A-Za-z]+)/.exec(sql)
  return m ? m[1]!.toUpperCase() : ''
}
