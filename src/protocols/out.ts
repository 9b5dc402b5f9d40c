// The output side of a protocol stage (HTTP, Redis, PostgreSQL): bytes in order, with gates (a delay, an
// answer whose turn has come but whose bytes are not ready) and actions (close or reset the link at an exact
// point of the stream).
// With nothing queued, writes go straight through; adjacent ranges of one chunk are merged (no slice is
// made until they are handed on), so a chunk that passes untouched is written once, itself, as on the
// TCP fast path.
import type { Sink } from '../faults/behavior.js'
import type { Clock, Timer } from '../core/clock.js'

/** Where output goes: the stage's queue, or the place of a gate being filled. */
export interface Emit {
  write(b: Buffer): void
  /** Hold what follows for ms (from now). */
  delay(ms: number): void
  /** Run fn once everything before it has been handed on. */
  act(fn: () => void): void
}

export class Gate { open = false }
const FIN = Symbol('fin')
type Item = Buffer | Gate | (() => void) | typeof FIN

export class Out implements Emit {
  #q: Item[] = []
  #pending: Buffer | null = null
  /** Or a range of a chunk not yet handed on (never both). */
  #span: Buffer | null = null
  #spanFrom = 0
  #spanTo = 0
  #held = 0
  #dead = false
  #ended = false
  readonly #timers = new Set<Timer>()

  constructor(readonly sink: Sink, readonly clock: Clock) {}

  /** Bytes queued behind a gate. */
  get held(): number { return this.#held }
  get dead(): boolean { return this.#dead }

  /** Writes bytes[from, to): a range that continues the one before it in the same chunk extends it. */
  writeAt(bytes: Buffer, from: number, to: number): void {
    if (this.#dead || this.#ended || to <= from) return
    if (this.#q.length > 0) { this.#q.push(bytes.subarray(from, to)); this.#held += to - from; return }
    if (this.#span === bytes && this.#spanTo === from) { this.#spanTo = to; return }
    this.flush()
    this.#span = bytes
    this.#spanFrom = from
    this.#spanTo = to
  }

  write(b: Buffer): void {
    if (this.#dead || this.#ended || b.length === 0) return
    if (this.#q.length > 0) { this.#q.push(b); this.#held += b.length; return }
    if (this.#span !== null) this.flush()
    const p = this.#pending
    if (p === null) { this.#pending = b; return }
    if (p.buffer === b.buffer && p.byteOffset + p.length === b.byteOffset) {
      this.#pending = Buffer.from(p.buffer, p.byteOffset, p.length + b.length)
      return
    }
    this.#pending = b
    this.sink.write(p)
  }

  /** Hand on what was merged: called when the stage returns. */
  flush(): void {
    let p = this.#pending
    if (p !== null) this.#pending = null
    else {
      const s = this.#span
      if (s === null) return
      this.#span = null
      p = this.#spanFrom === 0 && this.#spanTo === s.length ? s : s.subarray(this.#spanFrom, this.#spanTo)
    }
    if (!this.#dead) this.sink.write(p)
  }

  act(fn: () => void): void {
    if (this.#dead || this.#ended) return
    if (this.#q.length > 0) { this.#q.push(fn); return }
    this.flush()
    fn()
  }

  delay(ms: number): void {
    if (this.#dead || ms <= 0) return
    const g = this.gate()
    const timer = this.clock.setTimeout(() => { this.#timers.delete(timer); this.release(g) }, ms)
    this.#timers.add(timer)
  }

  /** A closed gate: what is written after it waits until release(). */
  gate(): Gate {
    const g = new Gate()
    if (this.#dead || this.#ended) return g
    this.flush()
    this.#q.push(g)
    return g
  }

  /** Opens a gate, first putting in its place what fill() emits (which may hold gates of its own). */
  release(g: Gate, fill?: (e: Emit) => void): void {
    if (this.#dead || g.open) return
    g.open = true
    const items: Item[] = []
    if (fill) {
      fill({
        write: b => { if (b.length > 0) { items.push(b); this.#held += b.length } },
        act: fn => { items.push(fn) },
        delay: ms => {
          if (ms <= 0) return
          const inner = new Gate()
          items.push(inner)
          const timer = this.clock.setTimeout(() => { this.#timers.delete(timer); this.release(inner) }, ms)
          this.#timers.add(timer)
        },
      })
    }
    const i = this.#q.indexOf(g)
    if (i < 0) return
    this.#q.splice(i, 1, ...items)
    if (i === 0) this.#drain()
  }

  /** The FIN, after everything queued. */
  end(): void {
    if (this.#dead || this.#ended) return
    this.#ended = true
    if (this.#q.length > 0) { this.#q.push(FIN); return }
    this.flush()
    this.sink.end()
  }

  #drain(): void {
    const q = this.#q
    while (q.length > 0 && !this.#dead) {
      const it = q[0]!
      if (it instanceof Gate) {
        if (!it.open) return
        q.shift()
        continue
      }
      q.shift()
      if (Buffer.isBuffer(it)) { this.#held -= it.length; this.sink.write(it) }
      else if (it === FIN) this.sink.end()
      else it()
    }
  }

  destroy(): void {
    this.#dead = true
    for (const t of this.#timers) t.cancel()
    this.#timers.clear()
    this.#q = []
    this.#pending = null
    this.#span = null
    this.#held = 0
  }
}
