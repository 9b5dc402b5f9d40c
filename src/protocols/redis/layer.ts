// Redis as a protocol layer: two stages at the head of a link's chains sharing one state. The upstream
// stage frames commands (RESP arrays or inline) and decides the Redis faults for each as soon as its name
// and first key are read; the downstream stage frames replies, pairs them in order with the commands, and
// sends coquin's own answers (redis_error) in their turn, so that later pipelined replies stay paired.
// With no fault firing, every byte passes untouched, in ranges of the chunks that came in.
//
// Replies stop being paired (faults that answer or delay replies no longer apply; commands are no longer
// journaled) once a SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR or CLIENT REPLY OFF|SKIP is answered: from
// then on one command may get many replies, or none. RESP3 pushes (`>`) are never paired.
import type { RedisAction, RedisCommand, Sink, Stage } from '../../faults/behavior.js'
import type { Fault } from '../../faults/fault.js'
import type { ProtocolHost, ProtocolLayer } from '../layer.js'
import type { RedisCommandInfo } from '../../observe/observer.js'
import { Out } from '../out.js'
import { MessageStream } from '../message-stream.js'
import { firstKey, firstWord, RespScanner, type RespValue } from './resp.js'
import { redisMatcherOf } from './match.js'
import { forEachHit } from '../message-faults.js'

/** One command, from its decision until its reply (or coquin's answer) was handed on. */
interface Pending {
  readonly index: number
  readonly name: string
  readonly key: string | undefined
  readonly db: number
  /** Clock time of the decision; 0 when no one listens. */
  readonly at: number
  /** coquin's answer, sent in this command's turn; null: the upstream answers. */
  readonly answer: Buffer | null
  readonly delayReply: number
  readonly faults: readonly string[]
  /** SELECT's database, taken once its reply is not an error. */
  readonly select: number | undefined
  /** SUBSCRIBE, MONITOR, CLIENT REPLY OFF|SKIP: replies stop being paired once this one's turn comes. */
  readonly unpairs: boolean
}

interface Plan {
  answer: string | null
  delayCommand: number
  delayReply: number
  abort: 'rst' | 'fin' | 'hang' | null
  faults: string[]
}

const PUSH = 0x3e
/** Commands after which one command may get many replies or none. */
const UNPAIRING = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'MONITOR'])

class RedisLink {
  readonly up: MessageStream
  readonly down: Out
  readonly #ctx
  readonly #commands: RespScanner
  readonly #replies: RespScanner
  /** Commands waiting for their reply, oldest first (a queue: `#head` is the first live entry). */
  #pending: Pending[] = []
  #head = 0
  #count = 0
  #db = 0
  /** New commands may be answered by coquin / replies are paired with commands. */
  #answerable = true
  #paired = true
  #raw = false
  // the downstream stage: the chunk being scanned, where its bytes not yet handed on start
  #dChunk: Buffer = Buffer.alloc(0)
  #dPos = 0

  constructor(readonly host: ProtocolHost, next: { upstream: Sink; downstream: Sink }) {
    this.up = new MessageStream(new Out(next.upstream, host.clock))
    this.down = new Out(next.downstream, host.clock)
    this.#ctx = { clock: host.clock, random: host.random }
    this.#commands = new RespScanner(true, {
      head: (args, at) => this.#onHead(args, at),
      value: end => this.up.end(end),
    })
    this.#replies = new RespScanner(false, {
      head: () => {},
      value: (end, v) => this.#onReply(end, v),
    })
  }

  // upstream ---------------------------------------------------------------------------------------

  writeUp(chunk: Buffer): void {
    this.up.begin(chunk)
    if (this.#raw) { this.up.raw(); return }
    const err = this.#commands.push(chunk)
    if (err !== undefined) { this.#fallback('upstream', err); return }
    this.up.finish()
  }

  /** The command's name and first key are known, at offset `at`: decide, then forward, hold back or drop it. */
  #onHead(args: readonly string[], at: number): void {
    if (this.up.mode === 'dead') return
    if (args.length === 0) { this.up.decide(at, 'forward'); return }
    const index = this.#count++
    const name = args[0]!
    const key = firstKey(name, args)
    const plan = this.#decide(name, args, key, index)
    const at0 = this.host.observer.redisCommand ? this.host.clock.now() : 0
    if (plan?.abort) {
      this.up.decide(at, 'dead')
      this.#event({ index, name, key, db: this.#db, at: at0, faults: plan.faults }, 'aborted', 'coquin')
      const mode = plan.abort
      const reason = `redis_abort: ${mode}`
      this.up.out.act(() => mode === 'rst' ? this.host.reset(reason) : mode === 'fin' ? this.host.close(reason) : this.host.silence(reason))
      return
    }
    const unpairs = UNPAIRING.has(name) || (name === 'CLIENT' && args[1]?.toUpperCase() === 'REPLY' && args[2]?.toUpperCase() !== 'ON')
    if (this.#answerable) {
      const select = name === 'SELECT' && /^\d{1,5}$/.test(args[1] ?? '') ? Number(args[1]) : undefined
      this.#pending.push({
        index, name, key, db: this.#db, at: at0, answer: plan?.answer != null ? Buffer.from(`-${plan.answer}\r\n`, 'latin1') : null,
        delayReply: plan?.delayReply ?? 0, faults: plan?.faults ?? [], select, unpairs,
      })
    }
    if (unpairs) this.#answerable = false
    if (plan?.answer != null) {
      this.up.decide(at, 'drop')
      this.#deliver()
      this.down.flush()
    } else {
      if (plan && plan.delayCommand > 0) this.up.out.delay(plan.delayCommand)
      this.up.decide(at, 'forward')
    }
  }

  /** Match, ask and draw every Redis fault for one command (its view is made only if a Redis fault is there). */
  #decide(name: string, args: readonly string[], key: string | undefined, index: number): Plan | null {
    let plan: Plan | null = null
    forEachHit<RedisCommand, RedisAction>(this.host, index, f => f.behavior.command, redisMatcherOf,
      () => ({ name, args, key, db: this.#db, client: this.host.client, link: this.host.id, index }), this.#ctx,
      (a, f) => addAction(plan ??= { answer: null, delayCommand: 0, delayReply: 0, abort: null, faults: [] }, a, f),
      // once replies are no longer paired, nothing can be answered or held in a command's turn
      a => this.#answerable || !(a.action === 'error' || (a.action === 'delay' && a.phase === 'reply')))
    return plan
  }

  // downstream -------------------------------------------------------------------------------------

  writeDown(chunk: Buffer): void {
    if (this.#raw) { this.down.write(chunk); this.down.flush(); return }
    this.#dChunk = chunk
    this.#dPos = 0
    if (this.#replies.atBoundary) this.#replyStarts(chunk[0]!)
    const err = this.#replies.push(chunk)
    if (err !== undefined) { this.#fallback('downstream', err); return }
    if (this.#dPos < chunk.length) this.down.writeAt(chunk, this.#dPos, chunk.length)
    this.down.flush()
  }

  endDown(): void {
    this.down.end()
  }

  /** A reply begins with this byte: if it is the next command's and that command's reply is delayed, hold it. */
  #replyStarts(type: number): void {
    if (type === PUSH || !this.#paired) return
    const p = this.#pending[this.#head]
    if (p !== undefined && p.answer === null && p.delayReply > 0) this.down.delay(p.delayReply)
  }

  #onReply(end: number, v: RespValue): void {
    this.down.writeAt(this.#dChunk, this.#dPos, end)
    this.#dPos = end
    if (v.type !== PUSH && this.#paired) {
      const p = this.#shift()
      if (p === undefined) {
        this.#paired = false
        this.host.log.debug({ link: this.host.id }, 'redis: a reply with no command; replies are no longer paired')
      } else {
        if (p.select !== undefined && v.error === undefined) this.#db = p.select
        this.#event(p, v.error ?? 'ok', 'upstream')
        if (p.unpairs) { this.#paired = false; this.#pending = []; this.#head = 0 }
      }
    }
    this.#deliver()
    if (end < this.#dChunk.length) this.#replyStarts(this.#dChunk[end]!)
  }

  /** coquin's answers whose turn has come (the replies before them were handed on). */
  #deliver(): void {
    if (!this.#replies.atBoundary && !this.#raw) return
    let p = this.#pending[this.#head]
    while (p !== undefined && p.answer !== null) {
      this.#shift()
      if (p.delayReply > 0) this.down.delay(p.delayReply)
      this.down.write(p.answer)
      this.#event(p, firstWord(p.answer.toString('latin1', 1, p.answer.length - 2)), 'coquin')
      p = this.#pending[this.#head]
    }
  }

  #shift(): Pending | undefined {
    const p = this.#pending[this.#head]
    if (p === undefined) return undefined
    this.#head++
    if (this.#head > 1024 && this.#head * 2 > this.#pending.length) { this.#pending = this.#pending.slice(this.#head); this.#head = 0 }
    return p
  }

  #event(p: Pick<Pending, 'index' | 'name' | 'key' | 'db' | 'at' | 'faults'>, outcome: string, source: 'upstream' | 'coquin'): void {
    const listen = this.host.observer.redisCommand
    if (!listen) return
    const info: RedisCommandInfo = {
      index: p.index, command: p.name, db: p.db, outcome, source, latencyMs: this.host.clock.now() - p.at,
      ...(p.key !== undefined ? { key: p.key } : {}), ...(p.faults.length > 0 ? { faults: p.faults } : {}),
    }
    listen.call(this.host.observer, this.host.owner.name, this.host.link, info)
  }

  /** A stream is not RESP: from here on both go through raw (answers already due are sent first). */
  #fallback(stream: 'upstream' | 'downstream', detail: string): void {
    this.host.fallback(stream, detail)
    this.#raw = true
    this.#paired = false
    for (let p = this.#shift(); p !== undefined; p = this.#shift()) if (p.answer !== null) this.down.write(p.answer)
    if (stream === 'upstream') this.up.raw()
    else this.up.pass()                                // an undecided command's bytes go on; the rest of it follows raw
    if (stream === 'downstream') this.down.writeAt(this.#dChunk, this.#dPos, this.#dChunk.length)
    this.down.flush()
  }

  destroy(): void {
    this.up.destroy()
    this.down.destroy()
    this.#pending = []
  }
}

function addAction(plan: Plan, a: RedisAction, f: Fault): void {
  plan.faults.push(f.name)
  switch (a.action) {
    case 'error': plan.answer ??= a.message; break
    case 'delay':
      if (a.phase === 'command') plan.delayCommand += a.ms
      else plan.delayReply += a.ms
      break
    case 'abort': plan.abort ??= a.mode; break
  }
}


export const redisLayer: ProtocolLayer = {
  name: 'redis',
  create(host, next) {
    const l = new RedisLink(host, next)
    const destroy = () => l.destroy()                // the link destroys both stages together; twice is harmless
    const upstream: Stage = {
      get held() { return l.up.held },
      write: c => l.writeUp(c),
      end: () => l.up.endStream(),
      destroy,
    }
    const downstream: Stage = {
      get held() { return l.down.held },
      write: c => l.writeDown(c),
      end: () => l.endDown(),
      destroy,
    }
    return { upstream, downstream }
  },
}
