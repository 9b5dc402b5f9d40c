// PostgreSQL as a protocol layer: two stages at the head of a link's chains sharing one state. The upstream
// stage frames the client's messages (the startup phase, then typed messages), keeps the prepared
// statements' SQL (Parse) and portals (Bind), and decides the PostgreSQL faults for each query: a simple
// Query, or an Execute (matched on its prepared statement's SQL). The downstream stage frames the server's
// messages, pairs each ReadyForQuery with the Query or Sync it answers ("turns"), and puts coquin's answers
// in their place, so the protocol stays in step.
//
// SSLRequest and GSSENCRequest are answered `N` by coquin: a client with sslmode=prefer (libpq's default)
// or disable continues in the clear and its queries can be seen; sslmode=require fails (use a `tcp` proxy).
//
// How coquin answers a query (pg_error):
//  - a simple Query: ErrorResponse, then ReadyForQuery, in the query's turn; the query never reaches the server.
//  - an Execute: dropped with every message after it up to Sync (a server skips them after an error too); the
//    Sync goes on, and the ErrorResponse is put just before the server's ReadyForQuery for that Sync.
//  - inside a transaction the ReadyForQuery says `E` (failed), as the server's would; until the client rolls
//    back, coquin reports the transaction as failed, answers other statements with 25P02 (current transaction
//    is aborted), and sends a COMMIT (simple query) as ROLLBACK, so that nothing of a transaction the client
//    saw fail is committed.
//  - FATAL: ErrorResponse, then the link closes (as a server terminating a connection does, 57P01).
import type { PgAction, PgQuery, Sink, Stage } from '../../faults/behavior.js'
import type { Fault } from '../../faults/fault.js'
import type { PgQueryInfo } from '../../observe/observer.js'
import type { ProtocolHost, ProtocolLayer } from '../layer.js'
import { Out } from '../out.js'
import { MessageStream } from '../message-stream.js'
import { pgMatcherOf } from './match.js'
import { forEachHit } from '../message-faults.js'
import {
  CANCEL_REQUEST, GSSENC_REQUEST, MAX_CAPTURE, PgScanner, SSL_REQUEST, cstring, errorFields, errorResponse, queryMessage,
  readyForQuery, startupParams, statementOf,
} from './wire.js'

const Q = 0x51, P = 0x50, B = 0x42, E = 0x45, S = 0x53, Z = 0x5a, C = 0x43, I = 0x49, PS = 0x73
/** Prepared statements and portals kept per link (a client that never closes them must not grow memory). */
const MAX_NAMES = 4096
/** Statements a failed transaction accepts (the others get 25P02). */
const ENDS_TRANSACTION = new Set(['ROLLBACK', 'ABORT', 'COMMIT', 'END'])
const IN_FAILED_TRANSACTION: Plan = {
  error: { code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block', severity: 'ERROR' },
  delay: 0, abort: null, faults: [],
}
/** Characters of a query kept in the journal. */
const JOURNAL_SQL = 200

/** One query (a simple Query, or an Execute) from its decision to its outcome. */
interface Query {
  readonly index: number
  readonly statement: string
  readonly sql: string
  /** Clock time of the decision; 0 when no one listens. */
  readonly at: number
  readonly faults: readonly string[]
  /** Answered by coquin: the SQLSTATE it answered with. */
  readonly answered?: string
  /** A simple query's outcome so far (its first ErrorResponse's SQLSTATE). */
  outcome?: string
}

/** A ReadyForQuery due: a Query or Sync sent upstream, or coquin's answer to a Query. */
interface Turn {
  readonly kind: 'query' | 'sync' | 'answer'
  readonly queries: Query[]
  /** sync: the query whose results are arriving. */
  current: number
  /** sync: coquin's ErrorResponse for an Execute it answered, put before the server's ReadyForQuery. */
  readonly inject: Buffer | null
  /** answer: coquin's ErrorResponse; `fatal`: the link closes after it. */
  readonly answer: Buffer | null
  readonly fatal: boolean
}

interface Plan {
  error: { code: string; message: string; severity: 'ERROR' | 'FATAL' } | null
  delay: number
  abort: 'rst' | 'fin' | 'hang' | null
  faults: string[]
}


/** Body bytes each frontend message's head needs (0: none: its type is enough). */
function frontCapture(type: number): number {
  switch (type) {
    case 0: return 10_000                // a startup-phase message, whole
    case Q: case P: return MAX_CAPTURE    // the SQL (a longer one is matched on its start)
    case B: return 256                    // portal and statement names (at most 63 bytes each in PostgreSQL)
    case E: return 128                    // the portal's name
    default: return 0
  }
}
const backCapture = (type: number): number => (type === E ? 4096 : type === Z ? 1 : 0)

class PgLink {
  readonly up: MessageStream
  readonly down: MessageStream
  readonly #ctx
  readonly #front: PgScanner
  readonly #back: PgScanner
  #user = ''
  #database = ''
  readonly #statements = new Map<string, string>()
  readonly #portals = new Map<string, string>()
  /** Executes sent since the last Sync. */
  #batch: Query[] = []
  /** An Execute was answered by coquin: messages are dropped up to the Sync, which carries this error. */
  #skip: Buffer | null = null
  #turns: Turn[] = []
  #count = 0
  /** The transaction status the client was last told, and whether coquin failed the transaction it is in. */
  #status = 'I'
  #failedTx = false
  #raw = false
  /** The server's current message is a ReadyForQuery that coquin rewrites (its status byte). */
  #rewrite: Buffer | null = null

  constructor(readonly host: ProtocolHost, next: { upstream: Sink; downstream: Sink }) {
    this.up = new MessageStream(new Out(next.upstream, host.clock))
    this.down = new MessageStream(new Out(next.downstream, host.clock))
    this.#ctx = { clock: host.clock, random: host.random }
    this.#front = new PgScanner(true, frontCapture, {
      head: (type, body, at, code) => this.#onFront(type, body, at, code),
      end: at => this.up.end(at),
    })
    this.#back = new PgScanner(false, backCapture, {
      head: (type, body, at) => this.#onBack(type, body, at),
      end: at => this.#onBackEnd(at),
    })
  }

  writeUp(chunk: Buffer): void {
    this.up.begin(chunk)
    if (this.#raw) { this.up.raw(); return }
    const err = this.#front.push(chunk)
    if (err !== undefined) { this.#fallback('upstream', err); return }
    this.up.finish()
    this.down.out.flush()
  }

  writeDown(chunk: Buffer): void {
    this.down.begin(chunk)
    if (this.#raw) { this.down.raw(); return }
    const err = this.#back.push(chunk)
    if (err !== undefined) { this.#fallback('downstream', err); return }
    this.down.finish()
  }

  // the client's messages ----------------------------------------------------------------------------

  #onFront(type: number, body: Buffer, at: number, code: number): void {
    if (this.up.mode === 'dead') return
    if (this.#skip !== null && type !== S) { this.up.decide(at, 'drop'); return }
    switch (type) {
      case 0: return this.#startup(body, at, code)
      case Q: return this.#query(cstring(body, 0)[0], at, null)
      case P: {
        const [name, next] = cstring(body, 0)
        remember(this.#statements, name, cstring(body, next)[0])
        break
      }
      case B: {
        const [portal, next] = cstring(body, 0)
        remember(this.#portals, portal, cstring(body, next)[0])
        break
      }
      case E: {
        const statement = this.#portals.get(cstring(body, 0)[0])
        return this.#query(statement === undefined ? '' : this.#statements.get(statement) ?? '', at, this.#batch)
      }
      case S: {
        const inject = this.#skip
        this.#skip = null
        this.#turns.push({ kind: 'sync', queries: this.#batch, current: 0, inject, answer: null, fatal: false })
        this.#batch = []
        break
      }
    }
    this.up.decide(at, 'forward')
  }

  #startup(body: Buffer, at: number, code: number): void {
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      this.up.decide(at, 'drop')                  // answered here: the client goes on in the clear
      this.down.out.write(Buffer.from('N'))
      return
    }
    if (code === CANCEL_REQUEST) { this.up.decide(at, 'forward'); return }
    if (code >> 16 !== 3) { this.#fallback('upstream', `a startup message with protocol code ${code}`); return }
    const params = startupParams(body)
    this.#user = params.user ?? ''
    this.#database = params.database ?? this.#user
    this.up.decide(at, 'forward')
  }

  /** A simple Query (batch null) or an Execute (of the batch up to the next Sync): decide, then act. */
  #query(sql: string, at: number, batch: Query[] | null): void {
    const index = this.#count++
    const statement = statementOf(sql)
    const q: PgQuery = { sql, statement, database: this.#database, user: this.#user, client: this.host.client, link: this.host.id, index }
    // In a transaction coquin failed, the server (which saw no error) would run what follows: answer as
    // PostgreSQL does in a failed transaction until the client ends it.
    const plan = this.#failedTx && !ENDS_TRANSACTION.has(statement) ? IN_FAILED_TRANSACTION : this.#decide(q)
    const when = this.host.observer.pgQuery ? this.host.clock.now() : 0
    const base = { index, statement, sql: sql.slice(0, JOURNAL_SQL), at: when, faults: plan?.faults ?? [] }
    if (plan?.abort) {
      this.up.decide(at, 'dead')
      this.#event(base, 'aborted', 'coquin')
      const mode = plan.abort
      const reason = `pg_abort: ${mode}`
      this.up.out.act(() => mode === 'rst' ? this.host.reset(reason) : mode === 'fin' ? this.host.close(reason) : this.host.silence(reason))
      return
    }
    const error = plan?.error
    if (error) {
      const answer = errorResponse(error.severity, error.code, error.message)
      const query: Query = { ...base, answered: error.code }
      if (error.severity === 'FATAL') {
        this.up.decide(at, 'dead')
        this.#turns.push({ kind: 'answer', queries: [query], current: 0, inject: null, answer, fatal: true })
        this.#deliver()
      } else if (batch === null) {
        this.up.decide(at, 'drop')
        this.#turns.push({ kind: 'answer', queries: [query], current: 0, inject: null, answer, fatal: false })
        this.#deliver()
      } else {
        this.up.decide(at, 'drop')
        batch.push(query)
        this.#skip = answer
      }
      return
    }
    if (plan && plan.delay > 0) this.up.out.delay(plan.delay)
    const query: Query = { ...base }
    if (batch !== null) batch.push(query)
    else this.#turns.push({ kind: 'query', queries: [query], current: 0, inject: null, answer: null, fatal: false })
    if (batch === null && this.#failedTx && (statement === 'COMMIT' || statement === 'END')) {
      this.up.decide(at, 'drop')                  // a failed transaction ends in a rollback, as the server would do
      this.up.out.write(queryMessage('ROLLBACK'))
      return
    }
    this.up.decide(at, 'forward')
  }

  /** Match, ask and draw every PostgreSQL fault for one query. */
  #decide(q: PgQuery): Plan | null {
    let plan: Plan | null = null
    forEachHit<PgQuery, PgAction>(this.host, q.index, f => f.behavior.query, pgMatcherOf, () => q, this.#ctx,
      (a, f) => addAction(plan ??= { error: null, delay: 0, abort: null, faults: [] }, a, f))
    return plan
  }

  // the server's messages ----------------------------------------------------------------------------

  #onBack(type: number, body: Buffer, at: number): void {
    this.#lastType = type
    const turn = this.#turns[0]
    if (type === Z) {
      let status = String.fromCharCode(body[0] ?? 0x49)
      if (turn !== undefined && turn.kind !== 'answer') {
        if (turn.inject !== null) {
          this.down.out.write(turn.inject)                         // in place of the Execute's result
          if (status === 'T') this.#failedTx = true
        }
      }
      if (status === 'I') this.#failedTx = false
      else if (this.#failedTx && status === 'T') status = 'E'
      this.#status = status
      if (status !== String.fromCharCode(body[0] ?? 0)) {
        this.#rewrite = readyForQuery(status)
        this.down.decide(at, 'drop')
        return
      }
    } else if (turn !== undefined && turn.kind !== 'answer') {
      if (type === E) this.#failed(turn, errorFields(body).get('C') ?? '')
      else if ((type === C || type === I || type === PS) && turn.kind === 'sync') {
        const q = turn.queries[turn.current++]
        if (q !== undefined) this.#event(q, 'ok', 'upstream')
      }
    }
    this.down.decide(at, 'forward')
  }

  /** An ErrorResponse from the server: the outcome of the query whose results were arriving. */
  #failed(turn: Turn, code: string): void {
    if (turn.kind === 'query') { turn.queries[0]!.outcome ??= code; return }
    const q = turn.queries[turn.current]
    if (q !== undefined && q.answered === undefined) this.#event(q, code, 'upstream')
    turn.current = turn.queries.length                          // the server skips the rest up to Sync
  }

  #onBackEnd(at: number): void {
    this.down.end(at)
    const rewrite = this.#rewrite
    if (this.#lastType !== Z) return
    this.#rewrite = null
    if (rewrite !== null) this.down.out.write(rewrite)
    this.#endTurn()
    this.#deliver()
  }

  /** The type of the server's message being read (its end is reported without it). */
  #lastType = 0

  /** The server's ReadyForQuery ended the first turn: its queries' outcomes. */
  #endTurn(): void {
    const turn = this.#turns[0]
    if (turn === undefined || turn.kind === 'answer') return   // the ReadyForQuery after authentication
    this.#turns.shift()
    if (turn.kind === 'query') {
      const q = turn.queries[0]!
      this.#event(q, q.outcome ?? 'ok', 'upstream')
      return
    }
    for (const q of turn.queries) if (q.answered !== undefined) this.#event(q, q.answered, 'coquin')
  }

  /** coquin's answers whose turn has come. */
  #deliver(): void {
    if (!this.#back.atBoundary && !this.#raw) return
    for (let turn = this.#turns[0]; turn?.kind === 'answer'; turn = this.#turns[0]) {
      this.#turns.shift()
      const q = turn.queries[0]!
      this.down.out.write(turn.answer!)
      this.#event(q, q.answered ?? 'ok', 'coquin')
      if (turn.fatal) {
        this.down.out.act(() => this.host.close(`pg_error: FATAL ${q.answered}`))
        this.#turns = []
        break
      }
      if (this.#status !== 'I') { this.#status = 'E'; this.#failedTx = true }
      this.down.out.write(readyForQuery(this.#status))
    }
    this.down.out.flush()
  }

  #event(q: Query, outcome: string, source: 'upstream' | 'coquin'): void {
    const listen = this.host.observer.pgQuery
    if (!listen) return
    const info: PgQueryInfo = {
      index: q.index, statement: q.statement, query: q.sql, database: this.#database, user: this.#user, outcome, source,
      latencyMs: this.host.clock.now() - q.at, ...(q.faults.length > 0 ? { faults: q.faults } : {}),
    }
    listen.call(this.host.observer, this.host.owner.name, this.host.link, info)
  }

  /** A stream cannot be framed: from here on both go through raw (answers already due are sent first). */
  #fallback(stream: 'upstream' | 'downstream', detail: string): void {
    this.host.fallback(stream, detail)
    this.#raw = true
    for (const turn of this.#turns) if (turn.kind === 'answer') this.down.out.write(turn.answer!)
    this.#turns = []
    if (stream === 'upstream') { this.up.raw(); this.down.pass() } else { this.down.raw(); this.up.pass() }
  }

  destroy(): void {
    this.up.destroy()
    this.down.destroy()
    this.#turns = []
    this.#batch = []
  }
}

/** name → value in a bounded map (the unnamed statement or portal, '', is replaced each time). */
function remember(map: Map<string, string>, name: string, value: string): void {
  if (map.size >= MAX_NAMES && !map.has(name)) map.delete(map.keys().next().value!)
  map.set(name, value)
}

function addAction(plan: Plan, a: PgAction, f: Fault): void {
  plan.faults.push(f.name)
  switch (a.action) {
    case 'error': plan.error ??= { code: a.code, message: a.message, severity: a.severity }; break
    case 'delay': plan.delay += a.ms; break
    case 'abort': plan.abort ??= a.mode; break
  }
}

export const postgresLayer: ProtocolLayer = {
  name: 'postgres',
  create(host, next) {
    const l = new PgLink(host, next)
    const destroy = () => l.destroy()                // the link destroys both stages together; twice is harmless
    const upstream: Stage = { get held() { return l.up.held }, write: c => l.writeUp(c), end: () => l.up.endStream(), destroy }
    const downstream: Stage = { get held() { return l.down.held }, write: c => l.writeDown(c), end: () => l.down.endStream(), destroy }
    return { upstream, downstream }
  },
}
