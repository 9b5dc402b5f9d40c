// HTTP mode: two stages at the head of a link's chains, one per direction, sharing one state. The
// upstream stage frames requests and decides the HTTP faults for each; the downstream stage frames
// responses, pairs them FIFO with the requests, and sends coquin's own responses in their turn.
// With no HTTP fault firing, every byte passes untouched, in slices of the chunks that came in.
import type { FaultAction, HeaderEdit, HttpAction, HttpContext, HttpRequest, Sink, Stage } from '../../faults/behavior.js'
import { MAX_TIMER_MS, type Timer } from '../../core/clock.js'
import type { Fault } from '../../faults/fault.js'
import type { ProtocolHost } from '../layer.js'
import { Framer, type FrameHandler, type Head, type RequestHead, type ResponseHead } from './framer.js'
import { matcherOf } from './match.js'
import { buildResponse, mergeEdits, rewriteHead, type SyntheticResponse } from './message.js'
import { Out, type Emit, type Gate } from '../out.js'

/**
 * What the HTTP stages may see and do of their link: the protocol host's view (src/protocols/layer.ts: id,
 * client, log, clock, random, reset, close, applied — `applied` per request, its index on the link) and
 * HTTP's own two hooks.
 */
export interface HttpLinkView extends Pick<ProtocolHost, 'id' | 'client' | 'log' | 'clock' | 'random' | 'reset' | 'close' | 'applied' | 'acted'> {
  /**
   * A stream of the link cannot be framed (`reason`: the framer's words): count and record it once, and
   * say what the proxy wants: `pass` the rest through unmatched, or `close` the link.
   */
  fallback(stream: 'upstream' | 'downstream', reason: string): HttpFallbackPolicy
  /** Optional, for the journal and metrics: one call per request whose response was sent (not per chunk). */
  exchanged?(e: HttpExchangeEvent): void
}

/** One request and its response, once the response was sent (or cut): the observer's HttpRequestInfo. */
export interface HttpExchangeEvent {
  /** 0-based place of the request on its link. */
  readonly index: number
  readonly method: string
  /** The request-target's path, without the query. */
  readonly path: string
  /** The request-target as sent. */
  readonly target: string
  /** The final status; 0 if the response was cut before its head. */
  readonly status: number
  /** `coquin`: answered by a fault without reaching the upstream. */
  readonly source: 'upstream' | 'coquin'
  /** From the request's head read to its response sent (or cut), in ms of the link's clock. */
  readonly latencyMs: number
  /** Names of the faults that acted on it (empty if none). */
  readonly faults: readonly string[]
  /** The request's Host field, if it has one. */
  readonly host?: string
}

export interface HttpStageOptions {
  /** Honour x-coquin-fault-status / -delay / -abort request headers (the proxy's `header_faults`); read per request. */
  headerFaults?: boolean | (() => boolean)
}

/** What a proxy does with a link whose bytes cannot be framed as HTTP (its `http_fallback`). */
export const HTTP_FALLBACK_POLICIES = ['pass', 'close'] as const
export type HttpFallbackPolicy = (typeof HTTP_FALLBACK_POLICIES)[number]

/** The request headers of caller-chosen faults (Envoy style). */
export const HEADER_FAULT_PREFIX = 'x-coquin-fault-'

interface Plan {
  /** The names of the faults that hit, in order. */
  names: string[]
  respond: { status: number; headers: Readonly<Record<string, string>>; body: string; fault: string; name: string } | null
  delayRequest: number
  delayHead: number
  delayBody: number
  abort: { phase: 'before_response' | 'after_head' | 'after_bytes'; bytes: number; mode: 'rst' | 'fin'; fault: string } | null
  close: { mode: 'fin' | 'rst' | 'rst_on_reuse'; announce: boolean; fault: string; by: Fault | undefined } | null
  request: HeaderEdit | undefined
  response: HeaderEdit | undefined
}

interface Exchange {
  readonly head: RequestHead
  readonly index: number
  /** Clock time its head was read; 0 when the link reports no exchanges (no one reads the latency). */
  readonly at: number
  readonly plan: Plan | null
  /** coquin answers it: the request is not forwarded. */
  readonly synthetic: SyntheticResponse | null
  /** The connection closes after coquin's answer (the client asked, or an early answer to Expect). */
  readonly closeAfter: boolean
  /** The answer may be sent (the request was read, and its delay is over). */
  ready: boolean
  /** The answer's place in the response stream, once its turn came before it was ready. */
  gate: Gate | null
  /** An upgrade request whose response was not a switch: what follows it is HTTP. */
  declined: boolean
}

/** What an HTTP action does, in the journal's words (`fault_acted`). */
const ACTED: Record<HttpAction['action'] | 'forget', FaultAction> = {
  respond: 'answered', delay: 'delayed', abort: 'aborted', close_after_response: 'closed', forget: 'silenced', rewrite_headers: 'modified',
}

const newPlan = (): Plan => ({
  names: [],
  respond: null, delayRequest: 0, delayHead: 0, delayBody: 0, abort: null, close: null, request: undefined, response: undefined,
})

function addAction(plan: Plan, a: HttpAction, fault: string, name = fault, by?: Fault): void {
  if (!plan.names.includes(name)) plan.names.push(name)
  switch (a.action) {
    case 'respond':
      plan.respond ??= { status: a.status, headers: a.headers ?? {}, body: a.body ?? '', fault, name }
      break
    case 'delay':
      // several http_delay faults add up, never past the longest timer
      if (a.phase === 'request') plan.delayRequest = Math.min(plan.delayRequest + a.ms, MAX_TIMER_MS)
      else if (a.phase === 'response_head') plan.delayHead = Math.min(plan.delayHead + a.ms, MAX_TIMER_MS)
      else plan.delayBody = Math.min(plan.delayBody + a.ms, MAX_TIMER_MS)
      break
    case 'abort': plan.abort ??= { phase: a.phase, bytes: a.bytes, mode: a.mode, fault }; break
    case 'close_after_response': plan.close ??= { mode: a.mode, announce: a.announce ?? false, fault, by }; break
    case 'rewrite_headers':
      plan.request = mergeEdits(plan.request, a.request)
      plan.response = mergeEdits(plan.response, a.response)
      break
  }
}

/** The path of a request-target (origin, absolute, authority or asterisk form), without query or fragment. */
export function pathOf(method: string, target: string): string {
  if (method === 'CONNECT') return ''
  let rest = target
  if (!rest.startsWith('/')) {
    const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(rest)
    if (!scheme) return rest
    rest = rest.slice(scheme[0].length)
    if (!rest.startsWith('/')) rest = '/' + rest
  }
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i)
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) return rest.slice(0, i)
  }
  return rest
}

/** The path and decoded query of a request-target (the first value of a repeated name). */
export function splitTarget(method: string, target: string): { path: string; query: Record<string, string> } {
  const path = pathOf(method, target)
  const query: Record<string, string> = Object.create(null) as Record<string, string>
  const q = method === 'CONNECT' ? -1 : target.indexOf('?')
  if (q >= 0) {
    const hash = target.indexOf('#', q)
    for (const [k, v] of new URLSearchParams(target.slice(q + 1, hash < 0 ? undefined : hash))) if (!(k in query)) query[k] = v
  }
  return { path, query }
}

/**
 * The HttpRequest of a head, its derived parts (path, query, headers) computed when first read: most
 * requests are only matched on their method and path, or not looked at (no HTTP fault).
 */
class LazyRequest implements HttpRequest {
  readonly method: string
  readonly version: string
  #head: RequestHead
  #path: string | undefined
  #query: Record<string, string> | undefined
  #headers: Record<string, string> | undefined
  #rawHeaders: string[] | undefined
  constructor(head: RequestHead, readonly client: HttpLinkView['client'], readonly link: number, readonly index: number) {
    this.#head = head
    this.method = head.method
    this.version = head.version
  }

  get target(): string { return this.#head.target }
  get path(): string { return this.#path ??= pathOf(this.method, this.target) }
  get query(): Record<string, string> {
    if (this.#query === undefined) {
      const q = this.method === 'CONNECT' ? -1 : this.target.indexOf('?')
      this.#query = q < 0 ? Object.create(null) as Record<string, string> : splitTarget(this.method, this.target).query
    }
    return this.#query
  }
  get headers(): Record<string, string> {
    if (this.#headers === undefined) this.#fields()
    return this.#headers!
  }
  get rawHeaders(): string[] {
    if (this.#rawHeaders === undefined) this.#fields()
    return this.#rawHeaders!
  }
  #fields(): void {
    const headers: Record<string, string> = Object.create(null) as Record<string, string>
    const rawHeaders: string[] = []
    for (const f of this.#head.fields) {
      if (f.lower === '') continue
      const prev = headers[f.lower]
      headers[f.lower] = prev === undefined ? f.value : `${prev}, ${f.value}`
      rawHeaders.push(f.name, f.value)
    }
    this.#headers = headers
    this.#rawHeaders = rawHeaders
  }
  toJSON(): HttpRequest {
    return {
      method: this.method, target: this.target, path: this.path, query: this.query, version: this.version,
      headers: this.headers, rawHeaders: this.rawHeaders, client: this.client, link: this.link, index: this.index,
    }
  }
}

const NO_NAMES: readonly string[] = Object.freeze([])

/** An HttpExchangeEvent whose target and path are read from the head only if the observer asks. */
class ExchangeEvent implements HttpExchangeEvent {
  #head: RequestHead
  #path: string | undefined
  readonly method: string
  constructor(
    head: RequestHead, readonly index: number, readonly status: number, readonly source: 'upstream' | 'coquin',
    readonly latencyMs: number, readonly faults: readonly string[],
  ) {
    this.#head = head
    this.method = head.method
  }
  get target(): string { return this.#head.target }
  get path(): string { return this.#path ??= pathOf(this.method, this.#head.target) }
  /** Read from the fields only if the observer asks. */
  get host(): string | undefined { return this.#head.host }
  toJSON(): HttpExchangeEvent {
    const host = this.host
    return {
      index: this.index, method: this.method, path: this.path, target: this.target, status: this.status, source: this.source,
      latencyMs: this.latencyMs, faults: this.faults, ...(host !== undefined ? { host } : {}),
    }
  }
}

class HttpLayer {
  readonly up: Framer
  readonly down: Framer
  readonly upOut: Out
  readonly downOut: Out
  /** Requests whose response has not been sent, in order. */
  exchanges: Exchange[] = []
  dead = false
  #upRaw = false
  #count = 0
  #current: Exchange | null = null
  #depth = 0
  #timers = new Set<Timer>()
  readonly #ctx: HttpContext
  // The response being passed on.
  #resp: Exchange | null = null
  #interim = false
  #status = 0
  /** The response being passed on ends the connection (Connection: close, or HTTP/1.0 without keep-alive). */
  #respCloses = false
  /** The upstream sent FIN: a read-until-close response ends now, and nothing follows it. */
  #downEnding = false
  #budget = -1

  /** Entry points for run(), made once (no closure per chunk). */
  readonly onUpEnd = (): void => this.upEnd()
  readonly onDownEnd = (): void => this.downEnd()

  constructor(readonly link: HttpLinkView, readonly faults: () => readonly Fault[], next: { upstream: Sink; downstream: Sink }, readonly opts: HttpStageOptions) {
    this.upOut = new Out(next.upstream, link.clock)
    this.downOut = new Out(next.downstream, link.clock)
    this.#ctx = { clock: link.clock, random: link.random }
    this.up = new Framer('request', this.#requests)
    this.down = new Framer('response', this.#responses)
  }

  /** Every entry point: merged writes are handed on when the outermost call returns; a bug resets the link. */
  run(fn: () => void): void
  run<A>(fn: (a: A) => void, a: A): void
  run<A>(fn: (a?: A) => void, a?: A): void {
    if (this.dead) { if (fn === this.onUpEnd) this.reused(); return }
    this.#depth++
    try {
      fn(a)
    } catch (err) {
      this.#failed(err)
      return
    } finally {
      this.#depth--
    }
    if (this.#depth === 0) { this.upOut.flush(); this.downOut.flush() }
  }

  /** A chunk from one side, for its framer: run() without a call through a closure, per chunk. */
  write(framer: Framer, chunk: Buffer): void {
    if (this.dead) { if (framer === this.up) this.reused(); return }
    this.#depth++
    try {
      framer.write(chunk)
    } catch (err) {
      this.#failed(err)
      return
    } finally {
      this.#depth--
    }
    if (this.#depth === 0) { this.upOut.flush(); this.downOut.flush() }
  }

  #failed(err: unknown): void {
    this.link.log.error({ err, link: this.link.id }, 'http layer failed')
    this.destroy()
    this.link.reset('http_error')
  }

  // Requests (client → server) ----------------------------------------------------------------

  // Bytes come as ranges of the chunks they came in (headAt, bodyAt, rawAt): what passes untouched is
  // merged by the Out and handed on without a slice made per message.
  readonly #requests: FrameHandler = {
    head: (h, raw) => this.#request(h as RequestHead, raw, 0, raw.length),
    headAt: (h, bytes, from, to) => this.#request(h as RequestHead, bytes, from, to),
    body: b => this.#requests.bodyAt!(b, 0, b.length),
    bodyAt: (b, from, to) => { if (this.#current?.synthetic == null) this.upOut.writeAt(b, from, to) },
    end: () => {
      const ex = this.#current
      this.#current = null
      if (ex?.synthetic && !ex.ready) this.#ready(ex)
      // coquin never switches protocols, and a declined upgrade leaves HTTP going on
      if (ex?.head.upgrade && (ex.synthetic || ex.declined)) this.up.proceed()
      // After a request that ends the connection the server must not process more (RFC 9112 §9.6): what
      // the client pipelines behind it is never answered by coquin. With an HTTP fault on the proxy it is
      // not forwarded either (a lax server could act on it: a bypass); with none, it passes as it came.
      else if (ex && !ex.head.keepAlive) {
        if (this.#anyHttpFault()) this.up.discard()
        else this.up.tunnel()
      }
    },
    raw: b => this.upOut.write(b),
    rawAt: (b, from, to) => this.upOut.writeAt(b, from, to),
    error: reason => {
      if (this.link.fallback('upstream', reason) === 'close') { this.#closeUnframed(this.upOut); return }
      this.#upRaw = true
      if (this.#current?.synthetic && !this.#current.ready) this.#ready(this.#current)
      this.#current = null
      this.#pump()
    },
  }

  /** A request head, bytes[from, to): decide its faults, then forward it (or not, or changed). */
  #request(req: RequestHead, bytes: Buffer, from: number, to: number): void {
    const index = this.#count++
    const plan = this.#decide(req, index)
    if (plan?.respond) {
      const r = plan.respond
      const closeAfter = !req.keepAlive || req.expectContinue || (plan.close?.announce ?? false)
      const synthetic = buildResponse({
        status: r.status, headers: { ...r.headers, 'X-Coquin-Fault': r.name }, body: r.body, method: req.method,
        close: closeAfter, keepAlive10: req.version === '1.0' && req.keepAlive, edit: plan.response,
      })
      const ex: Exchange = { head: req, index, at: this.#now(), plan, synthetic, closeAfter, ready: false, gate: null, declined: false }
      this.exchanges.push(ex)
      this.#current = ex
      if (req.expectContinue) this.#ready(ex)             // the client may wait for us before its body
      this.#pump()
      return
    }
    const ex: Exchange = { head: req, index, at: this.#now(), plan, synthetic: null, closeAfter: false, ready: true, gate: null, declined: false }
    this.exchanges.push(ex)
    this.#current = ex
    if (plan === null) { this.upOut.writeAt(bytes, from, to); return }
    if (plan.delayRequest > 0) this.upOut.delay(plan.delayRequest)
    if (plan.request) this.upOut.write(rewriteHead(req, plan.request))
    else this.upOut.writeAt(bytes, from, to)
  }

  #anyHttpFault(): boolean {
    const hf = this.opts.headerFaults
    return hf === true || (typeof hf === 'function' && hf()) || this.faults().some(f => f.behavior.request !== undefined)
  }

  /** When a request's head was read: only for the exchange events' latency, so not read if no one listens. */
  #now(): number { return this.link.exchanged ? this.link.clock.now() : 0 }

  /** Match, ask and draw every HTTP fault for one request (and read caller-chosen faults). */
  #decide(h: RequestHead, index: number): Plan | null {
    let plan: Plan | null = null
    let req: HttpRequest | undefined
    for (const f of this.faults()) {
      const b = f.behavior
      if (!b.request || (f.only !== undefined && !f.only(this.link.client.address))) continue
      req ??= new LazyRequest(h, this.link.client, this.link.id, index)
      if (!matcherOf(f.attributes)(req)) continue
      let a: HttpAction | null
      try {
        a = b.request(f.attributes as never, req, f, this.#ctx)
      } catch (err) {
        this.link.log.warn({ err, toxic: f.name, link: this.link.id }, 'http behavior failed')
        continue
      }
      if (!a || !f.decide(this.link.random)) continue
      this.link.applied(f, index, ACTED[a.action === 'close_after_response' && a.mode === 'rst_on_reuse' ? 'forget' : a.action])
      addAction(plan ??= newPlan(), a, f.type, f.name, f)
    }
    const hf = this.opts.headerFaults
    if (hf === true || (typeof hf === 'function' && hf())) plan = this.#headerFaults(h, plan)
    return plan
  }

  #headerFaults(h: RequestHead, plan: Plan | null): Plan | null {
    const strip: string[] = []
    for (const f of h.fields) {
      if (!f.lower.startsWith(HEADER_FAULT_PREFIX)) continue
      strip.push(f.lower)
      const v = f.value.trim().toLowerCase()
      const add = (a: HttpAction) => addAction(plan ??= newPlan(), a, 'header_fault')
      switch (f.lower.slice(HEADER_FAULT_PREFIX.length)) {
        case 'status': {
          const status = Number(v)
          if (/^\d{3}$/.test(v) && status >= 200 && status <= 599) add({ action: 'respond', status, body: '' })
          break
        }
        case 'delay':
          if (/^\d{1,9}$/.test(v)) add({ action: 'delay', phase: 'request', ms: Math.min(Number(v), 600_000) })
          break
        case 'abort':
          if (v === 'rst' || v === 'fin') add({ action: 'abort', phase: 'before_response', bytes: 0, mode: v })
          break
      }
    }
    if (strip.length > 0) addAction(plan ??= newPlan(), { action: 'rewrite_headers', request: { remove: strip } }, 'header_fault')
    return plan
  }

  /** coquin's answer may be sent once the request is read (and after its request-phase delay). */
  #ready(ex: Exchange): void {
    const fire = () => {
      ex.ready = true
      if (ex.gate) this.downOut.release(ex.gate, e => this.#emitSynthetic(ex, e))
    }
    const ms = ex.plan?.delayRequest ?? 0
    if (ms <= 0) { fire(); return }
    const timer = this.link.clock.setTimeout(() => { this.#timers.delete(timer); this.run(fire) }, ms)
    this.#timers.add(timer)
  }

  /** Sends coquin's answers whose turn has come: the responses before them were passed on. */
  #pump(): void {
    while (!this.dead && this.down.idle && this.exchanges[0]?.synthetic) {
      const ex = this.exchanges.shift()!
      if (ex.ready) this.#emitSynthetic(ex, this.downOut)
      else ex.gate = this.downOut.gate()
    }
    if (this.#upRaw && this.exchanges.length === 0) this.down.tunnel()
  }

  #emitSynthetic(ex: Exchange, e: Emit): void {
    const plan = ex.plan!
    const s = ex.synthetic!
    this.#report(ex, plan.abort?.phase === 'before_response' ? 0 : plan.respond!.status, 'coquin')
    const abort = plan.abort
    if (plan.delayHead > 0) e.delay(plan.delayHead)
    if (abort?.phase === 'before_response') { e.act(this.#breaker(abort.mode, abort.fault)); return }
    e.write(s.head)
    if (abort?.phase === 'after_head') { e.act(this.#breaker(abort.mode, abort.fault)); return }
    if (plan.delayBody > 0) e.delay(plan.delayBody)
    if (abort?.phase === 'after_bytes') {
      e.write(s.body.subarray(0, abort.bytes))
      e.act(this.#breaker(abort.mode, abort.fault))
      return
    }
    e.write(s.body)
    if (plan.close) e.act(this.#closer(plan.close, ex.index))
    else if (ex.closeAfter) e.act(this.#breaker('fin', plan.respond!.fault))
  }

  /**
   * `http_fallback: close`: nothing from the unframed point on is handed on (the framers stop now); what
   * was already let through goes out first, then the link closes (FIN both ways).
   */
  #closeUnframed(out: Out): void {
    this.up.stop()
    this.down.stop()
    out.act(this.#breaker('fin', 'http_unframed'))
  }

  /** After a response: close the link (fin, rst), or forget it until the client reuses it (rst_on_reuse). */
  #closer(close: NonNullable<Plan['close']>, index: number): () => void {
    if (close.mode !== 'rst_on_reuse') return this.#breaker(close.mode, close.fault)
    return () => {
      this.destroy()                                          // nothing more either way, timers cancelled
      this.#forgotten = { reason: close.fault, by: close.by, index: index + 1 }
    }
  }

  /** rst_on_reuse: the fault that forgot this link (and the request that reuses it); its next bytes reset both sides. */
  #forgotten: { reason: string; by: Fault | undefined; index: number } | null = null

  /** A forgotten link's client wrote (or sent FIN): reset both sides, forward nothing; the fault acted again. */
  reused(): void {
    const forgotten = this.#forgotten
    if (forgotten === null) return
    this.#forgotten = null
    if (forgotten.by) this.link.acted(forgotten.by, forgotten.index, 'reset')
    this.link.reset(forgotten.reason)
  }

  #breaker(mode: 'rst' | 'fin', reason: string): () => void {
    return () => {
      this.destroy()
      if (mode === 'rst') this.link.reset(reason)
      else this.link.close(reason)
    }
  }

  // Responses (server → client) -----------------------------------------------------------------

  readonly #responses: FrameHandler = {
    requestMethod: () => this.exchanges[0]?.head.method,
    head: (h, raw) => this.#response(h as ResponseHead, raw, 0, raw.length),
    headAt: (h, bytes, from, to) => this.#response(h as ResponseHead, bytes, from, to),
    body: b => this.#responses.bodyAt!(b, 0, b.length),
    bodyAt: (b, from, to) => {
      if (this.#budget < 0) { this.downOut.writeAt(b, from, to); return }
      if (to - from < this.#budget) { this.#budget -= to - from; this.downOut.writeAt(b, from, to); return }
      this.downOut.writeAt(b, from, from + this.#budget)
      const ex = this.#resp!
      const abort = ex.plan!.abort!
      this.#report(ex, this.#status, 'upstream')
      this.#abortResponse(abort.mode, abort.fault)
    },
    end: () => {
      if (this.#interim) { this.#interim = false; return }
      const ex = this.#resp
      this.#resp = null
      if (ex && this.exchanges[0] === ex) this.exchanges.shift()
      if (ex) this.#report(ex, this.#status, 'upstream')
      const plan = ex?.plan
      if (plan?.abort?.phase === 'after_bytes') return this.#abortResponse(plan.abort.mode, plan.abort.fault)  // a shorter body
      if (plan?.close) this.downOut.act(this.#closer(plan.close, ex!.index))
      if (this.#respCloses || this.#downEnding) {
        // The response ended the connection: nothing may be answered after it, by coquin either.
        this.exchanges = []
        this.down.tunnel()
        return
      }
      this.#pump()
    },
    raw: b => this.downOut.write(b),
    rawAt: (b, from, to) => this.downOut.writeAt(b, from, to),
    error: reason => {
      // Responses can no longer be paired: both ways are plain TCP; answers not yet sent are dropped.
      if (this.link.fallback('downstream', reason) === 'close') { this.#closeUnframed(this.downOut); return }
      this.exchanges = []
      this.#resp = null
      this.#budget = -1
      this.up.tunnel()
    },
  }

  /** A response head, bytes[from, to): pair it with its request, and apply that request's plan. */
  #response(res: ResponseHead, bytes: Buffer, from: number, to: number): void {
    const ex = this.exchanges[0]
    this.#interim = res.status < 200 && res.status !== 101
    if (this.#interim) { this.downOut.writeAt(bytes, from, to); return }
    this.#resp = ex ?? null
    this.#status = res.status
    const conn = res.connection
    this.#respCloses = conn.close || (res.version === '1.0' && !conn.keepAlive)
    this.#budget = -1
    const plan = ex?.plan
    if (plan) {
      const abort = plan.abort
      if (plan.delayHead > 0) this.downOut.delay(plan.delayHead)
      if (abort?.phase === 'before_response') { this.#report(ex, 0, 'upstream'); return this.#abortResponse(abort.mode, abort.fault) }
      let edit = plan.response
      if (plan.close?.announce) edit = mergeEdits(edit, { set: { Connection: 'close' } })
      if (edit) this.downOut.write(rewriteHead(res, edit))
      else this.downOut.writeAt(bytes, from, to)
      if (abort?.phase === 'after_head' || (abort?.phase === 'after_bytes' && abort.bytes === 0)) {
        this.#report(ex, res.status, 'upstream')
        return this.#abortResponse(abort.mode, abort.fault)
      }
      if (plan.delayBody > 0) this.downOut.delay(plan.delayBody)
      if (abort?.phase === 'after_bytes') this.#budget = abort.bytes
    } else this.downOut.writeAt(bytes, from, to)
    if (res.status === 101 || (ex?.head.method === 'CONNECT' && res.status >= 200 && res.status < 300)) this.up.tunnel()
    else if (ex?.head.upgrade) { ex.declined = true; this.up.proceed() }
  }

  #report(ex: Exchange, status: number, source: 'upstream' | 'coquin'): void {
    const report = this.link.exchanged
    if (!report) return
    report(new ExchangeEvent(ex.head, ex.index, status, source, this.link.clock.now() - ex.at, ex.plan?.names ?? NO_NAMES))
  }

  /** Break the link at this point of the response stream; nothing more of it is passed on. */
  #abortResponse(mode: 'rst' | 'fin', reason: string): void {
    this.#budget = -1
    this.down.stop()
    this.downOut.act(this.#breaker(mode, reason))
  }

  // Ends --------------------------------------------------------------------------------------

  upEnd(): void {
    const ex = this.#current
    this.up.end()
    if (ex?.synthetic && !ex.ready) this.#ready(ex)          // a truncated body: answer anyway
    this.#current = null
    this.upOut.end()
  }

  downEnd(): void {
    this.#downEnding = true
    this.down.end()                                           // a read-until-close response ends here
    this.exchanges = []                                       // no response will come for the rest
    this.downOut.end()
  }

  destroy(): void {
    if (this.dead) return
    this.dead = true
    this.up.stop()
    this.down.stop()
    this.upOut.destroy()
    this.downOut.destroy()
    for (const t of this.#timers) t.cancel()
    this.#timers.clear()
    this.exchanges = []
  }
}

/**
 * The two HTTP stages of a link: `upstream` goes first on the client → server chain, `downstream`
 * first on the server → client chain. They stay for the link's life (HTTP faults are read from
 * `faults()` per request, so adding or removing one needs no change to the chains).
 */
export function createHttpStages(
  link: HttpLinkView,
  faults: () => readonly Fault[],
  next: { upstream: Sink; downstream: Sink },
  opts: HttpStageOptions = {},
): { upstream: Stage; downstream: Stage } {
  const layer = new HttpLayer(link, faults, next, opts)
  return {
    upstream: {
      get held() { return layer.upOut.held + layer.up.buffered },
      write: chunk => layer.write(layer.up, chunk),
      end: () => layer.run(layer.onUpEnd),
      destroy: () => layer.destroy(),
    },
    downstream: {
      get held() { return layer.downOut.held + layer.down.buffered },
      write: chunk => layer.write(layer.down, chunk),
      end: () => layer.run(layer.onDownEnd),
      destroy: () => layer.destroy(),
    },
  }
}

export type { Head }
