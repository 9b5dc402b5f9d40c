// One direction of a message protocol (RESP, PostgreSQL) between its framer and its Out: what becomes of
// each message's bytes. A message's bytes are held from its first byte until its head is decided (the
// framer has read what the faults match on); then what was held, and the rest of the message as it comes,
// is handed on or thrown away. Messages that pass are written as ranges of the chunks that came in, so a
// chunk of whole passing messages leaves as itself.
import type { Out } from './out.js'

/** What becomes of the current message's bytes: held until decided, handed on, thrown away; dead: all from now on. */
export type MessageMode = 'undecided' | 'forward' | 'drop' | 'dead'

export class MessageStream {
  #chunk: Buffer = Buffer.alloc(0)
  /** Where the chunk's bytes not yet handed on or thrown away start. */
  #pos = 0
  #mode: MessageMode = 'undecided'
  #hold: Buffer[] = []
  #holdBytes = 0

  constructor(readonly out: Out) {}

  get mode(): MessageMode { return this.#mode }
  /** Bytes held by an undecided message or behind a gate of the Out. */
  get held(): number { return this.#holdBytes + this.out.held }

  /** A chunk arrives: the framer will report offsets into it. */
  begin(chunk: Buffer): void {
    this.#chunk = chunk
    this.#pos = 0
  }

  /** The current message's head was decided at offset `at`: what was read of it goes as `mode` says, and so will its rest. */
  decide(at: number, mode: 'forward' | 'drop' | 'dead'): void {
    if (this.#mode === 'dead') return
    if (mode === 'forward') { this.#release(); this.out.writeAt(this.#chunk, this.#pos, at) }
    else this.#discard()
    this.#pos = at
    this.#mode = mode
  }

  /** The current message ended at offset `at`; the next one starts undecided. */
  end(at: number): void {
    if (this.#mode === 'forward') this.out.writeAt(this.#chunk, this.#pos, at)
    this.#pos = at
    if (this.#mode !== 'dead') this.#mode = 'undecided'
  }

  /** The chunk was scanned: its tail goes as the current message's mode says (held if undecided). */
  finish(): void {
    const c = this.#chunk
    if (this.#pos < c.length) {
      if (this.#mode === 'forward') this.out.writeAt(c, this.#pos, c.length)
      else if (this.#mode === 'undecided') { this.#hold.push(c.subarray(this.#pos)); this.#holdBytes += c.length - this.#pos }
      this.#pos = c.length
    }
    this.out.flush()
  }

  /** Framing gave up: what is held and the rest of the chunk go on raw (unless the stream is dead), and so will all that follows. */
  raw(): void {
    if (this.#mode !== 'dead') {
      this.#release()
      this.out.writeAt(this.#chunk, this.#pos, this.#chunk.length)
      this.#mode = 'forward'
    }
    this.#pos = this.#chunk.length
    this.out.flush()
  }

  /** The other direction gave up framing: what is held goes on now, and the rest as it comes (unless dead). */
  pass(): void {
    if (this.#mode === 'dead') return
    this.#release()
    this.#mode = 'forward'
    this.out.flush()
  }

  /** The source's FIN: a message half read goes on as it is (the peer sees what the client sent), then the FIN. */
  endStream(): void {
    if (this.#mode !== 'dead') this.#release()
    this.out.end()
  }

  destroy(): void {
    this.out.destroy()
    this.#discard()
  }

  #release(): void {
    for (const b of this.#hold) this.out.write(b)
    this.#discard()
  }

  #discard(): void {
    if (this.#holdBytes === 0) return
    this.#hold = []
    this.#holdBytes = 0
  }
}
