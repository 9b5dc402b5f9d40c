// RESP2 and RESP3, framed incrementally in one direction: where each top-level value ends in the byte
// stream, and the little a layer needs to know of it. Nothing is copied but a command's first arguments
// (its name and keys, capped) and an error's first word; bulk bodies are skipped by arithmetic, so a
// 100 MB value costs as much as a small one. The bytes themselves are never changed: the stages forward
// ranges of the chunks they were given.
//
// Commands (client → server): arrays of bulk strings, or inline commands (words ending in LF, what
// `redis-cli` in a terminal or `nc` sends). Replies (server → client): every RESP2 and RESP3 type.
// Attributes (`|`) precede a reply and are part of it; pushes (`>`) are values of their own, never paired.

/** A value type byte. */
const enum T {
  Simple = 0x2b, Error = 0x2d, Integer = 0x3a, Bulk = 0x24, Array = 0x2a, Null = 0x5f, Bool = 0x23, Double = 0x2c,
  BigNumber = 0x28, BulkError = 0x21, Verbatim = 0x3d, Map = 0x25, Set = 0x7e, Attribute = 0x7c, Push = 0x3e,
}
const CR = 0x0d
const LF = 0x0a

/** The longest line (a value's header, a simple string or error, an inline command): Redis's own inline limit. */
export const MAX_LINE = 64 * 1024
/** Bytes of a command read before its faults are decided even if its key is not yet known. */
export const MAX_HEAD = 64 * 1024
/** Bytes kept of one argument (a key longer than this is matched on its first MAX_ARG bytes). */
const MAX_ARG = 1024

/** A top-level value that ended. */
export interface RespValue {
  /** Its type byte: `+`, `-`, `$`, `*`, `>`… (an attribute's reply: the reply's type). */
  readonly type: number
  /** For an error (`-` or `!`): its first word, `ERR`, `READONLY`, … */
  readonly error?: string
}

export interface RespHandler {
  /**
   * Commands only: the command's name and first arguments are known (or MAX_HEAD bytes of it were read), at
   * offset `at` of the chunk being scanned. Called once per command, before value(); `args` is empty for an
   * empty inline line or an empty array (which a server ignores: no reply).
   */
  head(args: readonly string[], at: number): void
  /** A top-level value ended at offset `end` (exclusive) of the chunk being scanned. */
  value(end: number, v: RespValue): void
}

/** How many arguments a command's faults need to see (its name, then up to its first key or db). */
export function argsWanted(name: string, args: readonly string[]): number {
  switch (name) {
    case 'EVAL': case 'EVALSHA': case 'EVAL_RO': case 'EVALSHA_RO': case 'FCALL': case 'FCALL_RO':
      return 4                              // name script numkeys key
    case 'BITOP': case 'OBJECT': case 'MEMORY': case 'XGROUP': case 'XINFO':
      return 3
    case 'XREAD': case 'XREADGROUP': {
      const i = args.findIndex(a => a.toUpperCase() === 'STREAMS')
      return i < 0 ? 16 : i + 2
    }
    case 'CLIENT':
      return 3                              // CLIENT REPLY OFF
    default:
      return 2
  }
}

const NO_KEY = new Set([
  'PING', 'ECHO', 'AUTH', 'HELLO', 'SELECT', 'QUIT', 'RESET', 'INFO', 'CLIENT', 'CONFIG', 'MULTI', 'EXEC', 'DISCARD',
  'UNWATCH', 'FLUSHDB', 'FLUSHALL', 'DBSIZE', 'TIME', 'SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'UNSUBSCRIBE',
  'PUNSUBSCRIBE', 'SUNSUBSCRIBE', 'PUBLISH', 'SPUBLISH', 'MONITOR', 'SCAN', 'KEYS', 'COMMAND', 'SCRIPT', 'FUNCTION',
  'SLOWLOG', 'LASTSAVE', 'SAVE', 'BGSAVE', 'BGREWRITEAOF', 'SHUTDOWN', 'REPLICAOF', 'SLAVEOF', 'ROLE', 'WAIT',
  'READONLY', 'READWRITE', 'CLUSTER', 'LATENCY', 'ACL', 'MODULE', 'DEBUG', 'SWAPDB', 'RANDOMKEY', 'PUBSUB', 'FAILOVER',
])

/** A command's first key, as far as its first arguments tell (undefined for commands without keys). */
export function firstKey(name: string, args: readonly string[]): string | undefined {
  switch (name) {
    case 'EVAL': case 'EVALSHA': case 'EVAL_RO': case 'EVALSHA_RO': case 'FCALL': case 'FCALL_RO':
      return Number(args[2]) > 0 ? args[3] : undefined
    case 'BITOP': case 'OBJECT': case 'MEMORY': case 'XGROUP': case 'XINFO':
      return args[2]
    case 'XREAD': case 'XREADGROUP': {
      const i = args.findIndex(a => a.toUpperCase() === 'STREAMS')
      return i < 0 ? undefined : args[i + 1]
    }
    default:
      return NO_KEY.has(name) ? undefined : args[1]
  }
}

/**
 * One direction's framer. push() scans a chunk and calls the handler at each boundary; it returns a message
 * when the bytes are not RESP (the caller falls back to raw TCP from there on and never calls it again).
 */
export class RespScanner {
  /** Children still to come of each open aggregate, outermost first. */
  readonly #stack: number[] = []
  /** Body bytes left of a bulk value, then its CRLF; -1: reading a line. */
  #body = -1
  #crlf = 0
  /** A line split across chunks (bounded by MAX_LINE). */
  #line: Buffer | null = null
  /** Bytes of the current top-level value read so far (0: between values). */
  #read = 0
  /** The current top-level value's type; ATTR_READ once an attribute was read and its reply is to follow. */
  #top = 0
  #error: string | undefined
  /** Commands: the arguments captured, the one being captured, how many are wanted, the array's length. */
  #args: string[] = []
  #capture: Buffer[] | null = null
  #captureLeft = 0
  #want = 2
  #headDone = false
  #total = 0

  constructor(readonly commands: boolean, readonly handler: RespHandler) {}

  /** True between top-level values. */
  get atBoundary(): boolean { return this.#read === 0 }

  push(chunk: Buffer): string | undefined {
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (this.#body >= 0) {
        const take = Math.min(this.#body, n - i)
        if (take > 0) {
          if (this.#capture !== null) this.#captureBytes(chunk, i, take)
          i += take
          this.#read += take
          this.#body -= take
          if (this.#body > 0) { this.#headLimit(i); break }
        }
        while (this.#crlf > 0 && i < n) {            // the CRLF after a bulk body
          if (chunk[i] !== (this.#crlf === 2 ? CR : LF)) return 'a bulk string that does not end with CRLF'
          this.#crlf--
          this.#read++
          i++
        }
        if (this.#crlf > 0) break
        this.#body = -1
        if (this.#capture !== null) this.#endCapture()
        const err = this.#childDone(i)
        if (err) return err
        continue
      }
      const nl = chunk.indexOf(LF, i)
      if (nl < 0) {
        const rest = chunk.subarray(i)
        if ((this.#line?.length ?? 0) + rest.length > MAX_LINE) return `a line longer than ${MAX_LINE} bytes`
        this.#line = this.#line === null ? Buffer.from(rest) : Buffer.concat([this.#line, rest])
        this.#read += rest.length
        this.#headLimit(n)
        break
      }
      let err: string | undefined
      const start = i
      this.#read += nl + 1 - i
      i = nl + 1
      if (this.#line !== null) {                 // the line began in an earlier chunk
        const line = Buffer.concat([this.#line, chunk.subarray(start, i)])
        this.#line = null
        if (line.length > MAX_LINE) return `a line longer than ${MAX_LINE} bytes`
        err = this.#onLine(line, 0, line.length, i)
      } else {
        if (i - start > MAX_LINE) return `a line longer than ${MAX_LINE} bytes`
        err = this.#onLine(chunk, start, i, i)
      }
      if (err) return err
    }
    return undefined
  }

  /** A whole line b[s, e) (ending in LF), ending at offset `end` of the chunk. */
  #onLine(b: Buffer, s: number, e: number, end: number): string | undefined {
    const type = b[s]!
    const topLevel = this.#stack.length === 0
    if (topLevel && (this.#top === 0 || this.#top === ATTR_READ)) this.#top = type
    if (this.commands) return topLevel ? this.#command(b, s, e, end) : this.#argument(b, s, e)
    if (e - s < 2 || b[e - 2] !== CR) return 'a line that does not end with CRLF'
    switch (type) {
      case T.Simple: case T.Integer: case T.Null: case T.Bool: case T.Double: case T.BigNumber:
        return this.#childDone(end)
      case T.Error:
        if (topLevel) this.#error = firstWord(b.toString('latin1', s + 1, e - 2))
        return this.#childDone(end)
      case T.Bulk: case T.BulkError: case T.Verbatim: {
        const len = lengthOf(b, s, e)
        if (len === undefined) return 'a bad bulk length'
        if (len < 0) return this.#childDone(end)                 // RESP2's null bulk string
        if (type === T.BulkError && topLevel) { this.#capture = []; this.#captureLeft = Math.min(len, 64) }
        this.#body = len
        this.#crlf = 2
        return undefined
      }
      case T.Array: case T.Set: case T.Push: case T.Map: case T.Attribute: {
        if (b[s + 1] === 0x3f) return 'a streamed aggregate'      // `*?`: RESP3 streaming, which Redis does not send
        if (type === T.Attribute && !topLevel) return 'an attribute inside an aggregate'
        const count = lengthOf(b, s, e)
        if (count === undefined) return 'a bad aggregate length'
        const children = type === T.Map || type === T.Attribute ? count * 2 : count
        if (children > 0) { this.#stack.push(children); return undefined }
        return this.#childDone(end)
      }
      default:
        return `an unknown type byte 0x${type.toString(16).padStart(2, '0')}`
    }
  }

  /** A command's first line: an array's length, or a whole inline command. */
  #command(b: Buffer, s: number, e: number, end: number): string | undefined {
    this.#args = []
    this.#headDone = false
    this.#want = 2
    if (b[s] !== T.Array) {                                      // inline: words separated by spaces
      const text = b.toString('latin1', s, e).trim()
      if (text !== '') this.#args = text.split(/[ \t]+/).slice(0, 16)
      if (this.#args.length > 0) this.#args[0] = this.#args[0]!.toUpperCase()
      return this.#childDone(end)
    }
    if (e - s < 2 || b[e - 2] !== CR) return 'a line that does not end with CRLF'
    const count = lengthOf(b, s, e)
    if (count === undefined) return 'a bad array length in a command'
    this.#total = count
    if (count <= 0) return this.#childDone(end)
    this.#stack.push(count)
    return undefined
  }

  /** A command's argument's header: a bulk string, captured if the faults need it. */
  #argument(b: Buffer, s: number, e: number): string | undefined {
    if (e - s < 2 || b[e - 2] !== CR) return 'a line that does not end with CRLF'
    if (b[s] !== T.Bulk || this.#stack.length !== 1) return 'a command argument that is not a bulk string'
    const len = lengthOf(b, s, e)
    if (len === undefined || len < 0) return 'a bad bulk length in a command'
    if (!this.#headDone && this.#args.length < this.#want) {
      this.#capture = []
      this.#captureLeft = Math.min(len, MAX_ARG)
    }
    this.#body = len
    this.#crlf = 2
    return undefined
  }

  /** A value ended at `end` (a top-level one, or a child): close the aggregates it completes. */
  #childDone(end: number): string | undefined {
    const s = this.#stack
    while (s.length > 0) {
      const k = s.length - 1
      if (--s[k]! > 0) {
        if (this.commands && !this.#headDone && this.#args.length >= this.#want) this.#emitHead(end)
        return undefined
      }
      s.pop()
    }
    if (this.commands && !this.#headDone) this.#emitHead(end)
    if (this.#top === T.Attribute) { this.#top = ATTR_READ; return undefined }   // its reply follows
    const v: RespValue = this.#error !== undefined ? { type: this.#top, error: this.#error } : { type: this.#top }
    this.#top = 0
    this.#error = undefined
    this.#read = 0
    this.handler.value(end, v)
    return undefined
  }

  #emitHead(at: number): void {
    this.#headDone = true
    this.handler.head(this.#args, at)
  }

  /** A command over MAX_HEAD bytes whose key is still unknown: decide on what is known. */
  #headLimit(at: number): void {
    if (this.commands && !this.#headDone && this.#read > MAX_HEAD) this.#emitHead(at)
  }

  #captureBytes(chunk: Buffer, i: number, take: number): void {
    const keep = Math.min(take, this.#captureLeft)
    if (keep > 0) { this.#capture!.push(chunk.subarray(i, i + keep)); this.#captureLeft -= keep }
  }

  #endCapture(): void {
    const c = this.#capture!
    const text = c.length === 1 ? c[0]!.toString('latin1') : c.length === 0 ? '' : Buffer.concat(c).toString('latin1')
    this.#capture = null
    if (!this.commands) { this.#error = firstWord(text); return }
    if (this.#headDone) return
    this.#args.push(this.#args.length === 0 ? text.toUpperCase() : text)
    this.#want = argsWanted(this.#args[0]!, this.#args)
  }
}

const ATTR_READ = -1

/** The integer after the type byte of the line b[s, e) (which ends in CRLF): -1 and up, at most 12 digits. */
function lengthOf(b: Buffer, s: number, e: number): number | undefined {
  let i = s + 1
  const last = e - 2
  const negative = b[i] === 0x2d
  if (negative) i++
  if (i === last || last - i > 12) return undefined
  let n = 0
  for (; i < last; i++) {
    const d = b[i]! - 0x30
    if (d < 0 || d > 9) return undefined
    n = n * 10 + d
  }
  return negative ? -n : n
}

/** An error reply's code: its first word (at most 64 characters). */
export function firstWord(s: string): string {
  const sp = s.search(/[ \r\n]/)
  return (sp < 0 ? s : s.slice(0, sp)).slice(0, 64)
}
