// A link: one accepted client connection and the one upstream connection made for it, never pooled,
// reused or re-opened. Each direction is the source socket, a chain of stages (one per active fault)
// and the destination socket; with no stage, chunks go straight across (the fast path).
import net from 'node:net'
import tls from 'node:tls'
import type { Clock, Timer } from '../core/clock.js'
import type { Fault } from '../faults/fault.js'
import type { Logger } from '../core/log.js'
import type { Observer } from '../observe/observer.js'
import type { Random } from '../core/random.js'
import type { FaultAction, LinkView, Sink, Stage, StageAction, Stream } from '../faults/behavior.js'
import type { HttpFallbackPolicy } from '../protocols/http/index.js'
import { layerOf, type Protocol, type ProtocolHost } from '../protocols/index.js'
import { rawSocket, rememberRaw, type ProxyTls } from './tls.js'

/** Bytes in flight per direction (held in stages + buffered in the destination) above which the source pauses. */
export const HIGH_WATER = 512 * 1024
const LOW_WATER = 128 * 1024
/** Chunks this large are bulk data: the destination is corked until the check phase (Direction #write). */
const CORK_MIN_BYTES = 16 * 1024
/** How long a closing socket may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 5_000

/** What a link needs from its proxy. */
export interface LinkOwner {
  readonly name: string
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  readonly observer: Observer
  readonly faults: readonly Fault[]
  /** The faults of partitions cutting this proxy (src/control/partition.ts): decided after `faults`, never listed. */
  readonly cuts?: readonly Fault[]
  /** Not `tcp`: the protocol layer's stages (src/protocols/) head both chains for the link's life. */
  readonly protocol?: Protocol
  /** HTTP mode: honour x-coquin-fault-* request headers (the proxy's `header_faults`); read per request. */
  readonly headerFaults?: boolean
  /** HTTP mode: what happens to a link that cannot be framed (the proxy's `http_fallback`); read when it happens. */
  readonly httpFallback?: HttpFallbackPolicy
  /** TLS to originate to the upstream (src/datapath/tls.ts); the client socket arrives already decrypted. */
  readonly tls?: ProxyTls
  upstreamTarget(): { host: string; port: number }
  /** The listen address and upstream as the proxy names them (metric labels); absent for a bare owner. */
  readonly address?: string
  readonly upstream?: string
  linkClosed(link: Link): void
}

/** One fault's stage on one direction, with the wiring that lets it be removed or replaced live. */
class Node implements Sink {
  target: Sink
  stage!: Stage
  gotEnd = false
  passedEnd = false
  /** Where the stage hands on: whatever follows this node now (it changes as faults come and go). */
  readonly out: Sink = new NodeOut(this)
  constructor(readonly fault: Fault, target: Sink) {
    this.target = target
  }
  write(chunk: Buffer): void { this.stage.write(chunk) }
  end(): void { if (!this.gotEnd) { this.gotEnd = true; this.stage.end() } }
}

/** A node's output as a Sink (a small object with prototype methods: a faulted link has one per stage). */
class NodeOut implements Sink {
  constructor(readonly node: Node) {}
  write(chunk: Buffer): void { this.node.target.write(chunk) }
  end(): void {
    const n = this.node
    if (!n.passedEnd) { n.passedEnd = true; n.target.end() }
  }
}

/** A direction's destination socket as a Sink. */
class DestinationSink implements Sink {
  constructor(readonly d: Direction) {}
  write(chunk: Buffer): void { this.d.toDestination(chunk) }
  end(): void { if (!this.d.dst.destroyed) this.d.dst.end() }
}

/** What follows a direction's protocol stage: its first fault's stage, or its destination. */
class RestSink implements Sink {
  constructor(readonly d: Direction) {}
  write(chunk: Buffer): void { (this.d.head ?? this.d.sink).write(chunk) }
  end(): void { (this.d.head ?? this.d.sink).end() }
}

class Direction {
  readonly nodes: Node[] = []
  head: Sink | null = null
  /** The protocol layer's stage (src/protocols/), first on the chain for the link's life; faults' stages follow it. */
  fixed: Stage | null = null
  /** Where the protocol stage hands on: the first fault's stage, or the destination (made for protocol links only). */
  get rest(): Sink { return new RestSink(this) }
  bytes = 0
  /** The destination as a Sink, for the last stage. A small object with prototype methods, not closures: every link has two. */
  readonly sink: Sink = new DestinationSink(this)
  constructor(readonly link: Link, readonly name: Stream, readonly src: net.Socket, readonly dst: net.Socket) {}

  /** DestinationSink's write: to the socket unless it is gone, then backpressure. */
  toDestination(chunk: Buffer): void {
    if (!this.dst.destroyed) this.#write(chunk)
    this.check()
  }

  /** A chunk from the source (the link's data listener calls it: a method, not a closure per direction). */
  onData(chunk: Buffer): void {
    this.bytes += chunk.length
    this.link.lastActive = this.link.clock.now()
    const head = this.fixed ?? this.head
    if (head === null) {
      // The same mark as with stages: pausing at the socket's own 16 KiB mark cost a pause/resume
      // cycle every few chunks (bulk through the fast path measured ~20% below a latency-0 stage's).
      this.#write(chunk)
      if (this.dst.writableLength > HIGH_WATER) this.src.pause()
      return
    }
    head.write(chunk)
    this.check()
  }

  /** The source sent its FIN: it goes down the chain like data (a method: the link's one end listener calls it). */
  end(): void { (this.fixed ?? this.head ?? this.sink).end() }

  /**
   * Writes to the destination. A large chunk (bulk data) corks the destination until the event loop's check
   * phase: libuv reads a busy socket up to 32 times per poll phase, and the chunks of one phase then leave
   * in one writev instead of one write each — bulk throughput measured 2–3.5× the uncorked path's, level
   * with HAProxy. Small chunks (requests, replies, echoes) are written at once, so round trips pay nothing;
   * order is kept either way (every chunk goes through the same write()), and end() flushes a cork.
   */
  #write(chunk: Buffer): void {
    if (!this.#corked && chunk.length >= CORK_MIN_BYTES) {
      this.#corked = true
      this.dst.cork()
      setImmediate(uncork, this)
    }
    this.dst.write(chunk)
  }

  #corked = false
  /** The check phase after a cork (a function given the direction, not a closure made per link). */
  static uncork(d: Direction): void {
    d.#corked = false
    if (!d.dst.destroyed) d.dst.uncork()
  }

  onDrain(): void {
    if (this.fixed === null && this.head === null) this.src.resume()
    else this.check()
  }

  /** Pause the source while held + buffered bytes pass the mark; resume once they fall below. */
  check(): void {
    if (this.link.closed) return
    let total = this.dst.writableLength + (this.fixed?.held ?? 0)
    for (const n of this.nodes) total += n.stage.held
    if (total > HIGH_WATER) this.src.pause()
    else if (total <= LOW_WATER && this.src.isPaused() && this.dst.writableLength < this.dst.writableHighWaterMark) this.src.resume()
  }

  /** Append a stage for a fault (faults keep the proxy's order: a new one goes last). */
  add(node: Node): void {
    node.target = this.sink
    const last = this.nodes.at(-1)
    if (last) last.target = node
    this.nodes.push(node)
    this.head = this.nodes[0]!
  }

  /** Take a stage out live: it hands on what it holds (and a FIN it held back), then the chain closes over it. */
  remove(node: Node): void {
    const i = this.nodes.indexOf(node)
    if (i < 0) return
    node.stage.flush?.('remove')
    if (this.link.closed || !this.nodes.includes(node)) return   // the flush ended the link: stages are gone
    if (node.gotEnd) node.out.end()
    const prev = this.nodes[i - 1]
    if (prev) prev.target = node.target
    this.nodes.splice(i, 1)
    this.head = this.nodes[0] ?? null
    node.stage.destroy()
    this.check()
  }

  /** Put a new stage where an old one was (an update): the old one hands on what it holds first. */
  replace(old: Node, node: Node): void {
    const i = this.nodes.indexOf(old)
    if (i < 0 || this.link.closed) { node.stage.destroy(); return }
    old.stage.flush?.('update')
    if (this.link.closed || !this.nodes.includes(old)) { node.stage.destroy(); return }
    node.target = old.target
    node.gotEnd = old.gotEnd
    node.passedEnd = old.passedEnd
    const prev = this.nodes[i - 1]
    if (prev) prev.target = node
    this.nodes[i] = node
    this.head = this.nodes[0]!
    old.stage.destroy()
    if (node.gotEnd && !node.passedEnd) node.stage.end()
    this.check()
  }

  destroyStages(): void {
    this.fixed?.destroy()
    this.fixed = null
    for (const n of this.nodes.splice(0)) n.stage.destroy()
    this.head = null
  }
}

const uncork = Direction.uncork

/**
 * A link's life: `connecting` (the upstream connect is under way, or delayed by a fault) → `open`; a connect
 * fault may make it `hanging` (the client is held, no upstream ever); an open link may be `silenced` (a fault
 * forwards nothing more and tells no one); every state ends in `closed`.
 */
export type LinkState = 'connecting' | 'hanging' | 'open' | 'silenced' | 'closed'
const TRANSITIONS: Record<LinkState, readonly LinkState[]> = {
  connecting: ['open', 'hanging', 'silenced', 'closed'],
  hanging: ['closed'],
  open: ['silenced', 'closed'],
  silenced: ['closed'],
  closed: [],
}

let nextId = 1

/** What the client sent while its upstream connect is delayed (held), whether it sent FIN, and the listener reading it. */
interface Early { chunks: Buffer[]; bytes: number; ended: boolean; onData: (chunk: Buffer) => void }

export class Link {
  readonly id = nextId++
  readonly upstream: net.Socket
  readonly up: Direction
  readonly down: Direction
  readonly openedAt = Date.now()
  readonly log: Logger
  readonly clock: Clock
  lastActive: number
  #state: LinkState = 'connecting'
  /** Where the link is in its life (see LinkState); only #to() changes it. */
  get state(): LinkState { return this.#state }
  reason: string | undefined
  /** Which side sent the first FIN: names the reason of a clean close. */
  #firstEnd: 'client_close' | 'upstream_close' | undefined
  #closedSockets = 0
  /** Both sockets' data listener (taken off the client while its upstream connect is delayed). */
  readonly #onData: (this: net.Socket, chunk: Buffer) => void
  #connectTimer: Timer | undefined
  #connectStarted = 0
  /** Faults applied on this link: their stages, one per direction they act on. Made on the first (most links have none). */
  #applied: Map<Fault, Node[]> | undefined
  get applied(): ReadonlyMap<Fault, readonly Node[]> { return this.#applied ?? NONE_APPLIED }
  #setApplied(fault: Fault, nodes: Node[]): void { (this.#applied ??= new Map()).set(fault, nodes) }

  constructor(readonly owner: LinkOwner, readonly client: net.Socket) {
    this.log = owner.log
    this.clock = owner.clock
    this.lastActive = this.clock.now()
    this.upstream = this.#upstreamSocket()
    this.up = new Direction(this, 'upstream', client, this.upstream)
    this.down = new Direction(this, 'downstream', this.upstream, client)
    // One listener per event for both sockets, telling them apart by `this`: a few closures per link, not per direction.
    const link = this
    const up = this.up
    const down = this.down
    const onError = function (this: net.Socket, err: NodeJS.ErrnoException) { link.#onError(this === client ? 'client' : 'upstream', err) }
    const onEnd = function (this: net.Socket) { link.#onEnd(this === client) }
    const onClose = () => this.#onSocketClose()
    const onData = this.#onData = function (this: net.Socket, chunk: Buffer) { (this === client ? up : down).onData(chunk) }
    const onDrain = function (this: net.Socket) { (this === client ? down : up).onDrain() }
    client.on('error', onError)
    this.upstream.on('error', onError)
    client.on('close', onClose)
    this.upstream.on('close', onClose)
    client.on('data', onData)
    this.upstream.on('data', onData)
    client.on('end', onEnd)
    this.upstream.on('end', onEnd)
    client.on('drain', onDrain)
    this.upstream.on('drain', onDrain)
    const layer = layerOf(owner.protocol)
    if (layer) {
      const stages = layer.create(this.#protocolHost(), { upstream: this.up.rest, downstream: this.down.rest })
      this.up.fixed = stages.upstream
      this.down.fixed = stages.downstream
    }
  }

  /** A TCP socket, not yet connected; with TLS to the upstream, a TLS socket over it that handshakes once it connects. */
  #upstreamSocket(): net.Socket {
    const raw = new net.Socket({ allowHalfOpen: true })
    const t = this.owner.tls?.upstream
    if (!t) return raw
    const { host } = this.owner.upstreamTarget()
    raw.on('error', () => {})   // the TLS socket reports it too
    raw.once('connect', () => { this.#tcpConnected = true })
    const secure = tls.connect({
      socket: raw, host, servername: t.servername ?? (net.isIP(host) ? undefined : host),
      ca: t.ca, rejectUnauthorized: t.rejectUnauthorized,
    })
    rememberRaw(secure, raw)
    return secure
  }

  /** A socket sent its FIN: the first one names a clean close; it goes on down its direction. */
  #onEnd(fromClient: boolean): void {
    this.#firstEnd ??= fromClient ? 'client_close' : 'upstream_close'
    if (!fromClient) this.down.end()
    else if (this.#early) this.#early.ended = true
    else this.up.end()
  }

  /** Upstream TLS: the TCP connection is up (a failure from here on is the handshake's). */
  #tcpConnected = false

  /** Hand on what every fault's stage holds, now (HTTP mode, before closing right after a response). */
  #flushStages(): void {
    for (const dir of [this.up, this.down]) for (const n of [...dir.nodes]) if (!this.closed) n.stage.flush?.('update')
  }

  /** What the protocol layer sees of this link (src/protocols/layer.ts). */
  #protocolHost(): ProtocolHost {
    const owner = this.owner
    const observer = owner.observer
    const socket = this.client
    let client: { address: string; port: number } | undefined
    let fellBack = false
    return {
      id: this.id,
      link: this,
      owner,
      observer,
      // Read on first use: reading remoteAddress at every link's start gives the socket another hidden
      // class, and Node's stream code then takes a slower path for every socket (measured: ~1.6k
      // instructions per HTTP request).
      get client() { return client ??= { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 } },
      log: this.log,
      clock: this.clock,
      random: owner.random,
      // after a response: what the faults' stages hold of it goes out first
      reset: reason => { this.#flushStages(); this.reset(reason) },
      close: reason => { this.#flushStages(); this.close(reason) },
      silence: reason => this.silence(reason),
      fallback: (stream, detail) => {
        if (fellBack) return
        fellBack = true
        this.log.debug({ link: this.id, stream, reason: detail }, `${owner.protocol} link fell back to tcp`)
        observer.protocolFallback?.(owner.name, this, { protocol: owner.protocol ?? 'tcp', stream, detail })
      },
      applied: (fault, index, action) => {
        observer.faultApplied(owner.name, fault, this, index)
        observer.faultActed?.(owner.name, fault, this, action, index)
      },
      acted: (fault, index, action) => observer.faultActed?.(owner.name, fault, this, action, index),
    }
  }

  get closed(): boolean { return this.#state === 'closed' }

  /**
   * The one place the state changes, along the transitions LinkState lists; closed is final. A move the table
   * does not list is a bug: it is logged and refused (the data path never throws from a socket event).
   */
  #to(next: LinkState): void {
    if (!TRANSITIONS[this.#state].includes(next)) {
      this.log.error({ link: this.id, from: this.#state, to: next }, 'link state: no such transition (a bug)')
      return
    }
    this.#state = next
  }

  /** Decide every fault for this link, then connect upstream (now, later, or never). */
  start(): void {
    this.owner.observer.linkOpened(this.owner.name, this)
    let delay = 0
    for (const list of [this.owner.faults, this.owner.cuts ?? []]) for (const f of list) {
      const b = f.behavior
      if (b.connect) {
        const act = b.connect(f.attributes, this.owner.random)
        if (act.action === 'pass' || !this.#hits(f)) continue
        this.owner.observer.faultApplied(this.owner.name, f, this)
        const acted = this.#actedBy(f)
        if (act.action === 'refuse' || act.action === 'reset') { acted(act.action === 'refuse' ? 'refused' : 'reset'); this.reset(f.type); return }
        if (act.action === 'hang') { acted('hung'); this.#hang(f); return }
        acted('delayed')
        delay = Math.max(delay, act.ms)
        this.#setApplied(f, [])
      } else {
        this.apply(f)
      }
    }
    if (delay > 0) {
      this.#connectTimer = this.clock.setTimeout(() => this.#connect(), delay)
      this.#readEarly()
    } else this.#connect()
  }

  /** Draw a fault for this link and, if it hits, put its stages on the chain. */
  apply(fault: Fault): void {
    if (this.closed || this.state === 'silenced' || this.applied.has(fault) || !fault.behavior.stage) return
    if (!this.#hits(fault)) return
    const nodes: Node[] = []
    for (const dir of [this.up, this.down]) {
      if (!fault.appliesTo(dir.name)) continue
      const node = this.#node(fault, dir)
      dir.add(node)
      nodes.push(node)
    }
    this.#setApplied(fault, nodes)
    this.owner.observer.faultApplied(this.owner.name, fault, this)
  }

  /** The fault's attributes changed: rebuild its stages in place. */
  update(fault: Fault): void {
    const nodes = this.applied.get(fault)
    if (!nodes || this.closed || this.state === 'silenced') return
    const fresh: Node[] = []
    for (const old of nodes) {
      if (this.closed) return
      const dir = this.#directionOf(old)
      const node = this.#node(fault, dir)
      dir.replace(old, node)
      fresh.push(node)
    }
    if (!this.closed) this.#setApplied(fault, fresh)
  }

  /** The fault was removed: its stages hand on what they hold and leave the chain. */
  unapply(fault: Fault): void {
    const nodes = this.applied.get(fault)
    if (!nodes) return
    this.#applied!.delete(fault)
    if (this.state === 'hanging' && nodes.length === 0) { this.close(fault.type); return }   // the hang itself went
    if (this.state === 'silenced') return
    for (const n of nodes) if (!this.closed) this.#directionOf(n).remove(n)
  }

  /** Whether a fault hits this link: its client filter (partitions' `clients`), then its draw. */
  #hits(fault: Fault): boolean {
    return (fault.only === undefined || fault.only(this.client.remoteAddress ?? '')) && fault.decide(this.owner.random)
  }

  #directionOf(node: Node): Direction { return this.up.nodes.includes(node) ? this.up : this.down }

  #node(fault: Fault, dir: Direction): Node {
    const node = new Node(fault, dir.sink)
    node.stage = fault.behavior.stage!(fault.attributes, this.#view(fault, dir.name), node.out)
    return node
  }

  #view(fault: Fault, stream: Stream): LinkView {
    return new StageView(this, fault, stream, this.#actedBy(fault, stream))
  }

  /**
   * Records (observer.faultActed) that a fault did something to this link, at most once per action; no-op
   * when no observer listens. `stream`: the direction of the stage that acted.
   */
  #actedBy(fault: Fault, stream?: Stream): (action: FaultAction) => void {
    const observer = this.owner.observer
    if (!observer.faultActed) return () => {}
    let seen: Set<FaultAction> | undefined
    return action => {
      if (this.closed) return
      if ((seen ??= new Set()).has(action)) return
      seen.add(action)
      observer.faultActed!(this.owner.name, fault, this, action, undefined, stream)
    }
  }

  /** A partition (or other control-plane cut) acted on this link from outside the data path. */
  actedOn(fault: Fault, action: FaultAction): void { this.#actedBy(fault)(action) }

  #hang(fault: Fault): void {
    this.#to('hanging')
    this.#setApplied(fault, [])
    // Read and discard what the client sends, so that its FIN or RST is seen and the link ends.
    this.client.removeAllListeners('data')
    this.client.removeAllListeners('end')
    this.client.on('end', () => this.destroy('client_close'))
    this.client.resume()
  }

  /** While the upstream connect is delayed: what the client sent (held here), and whether it sent FIN. */
  #early: Early | undefined

  /**
   * Read the client while its upstream connect is delayed, so that its leaving (RST, or FIN then close)
   * is seen now rather than when the delay ends. What it sends is held, up to the high-water mark
   * (then the client is paused), and handed on in order once the upstream is connected.
   */
  #readEarly(): void {
    const early: Early = this.#early = { chunks: [], bytes: 0, ended: false, onData: chunk => this.#onEarlyData(early, chunk) }
    this.client.off('data', this.#onData)
    this.client.on('data', early.onData)
    this.client.resume()
  }

  #onEarlyData(early: Early, chunk: Buffer): void {
    early.chunks.push(chunk)
    early.bytes += chunk.length
    if (early.bytes > HIGH_WATER) this.client.pause()
  }

  /** Connected: what was held goes on through the chain, in order, then a FIN it held. */
  #handOnEarly(): void {
    const early = this.#early
    if (!early) return
    this.#early = undefined
    this.client.off('data', early.onData)
    this.client.on('data', this.#onData)
    for (const chunk of early.chunks) if (!this.closed) this.up.onData(chunk)
    if (early.ended && !this.closed) this.up.end()
  }

  #connect(): void {
    if (this.closed) return
    const { host, port } = this.owner.upstreamTarget()
    this.#connectStarted = this.clock.now()
    const raw = rawSocket(this.upstream)
    this.upstream.once(raw === this.upstream ? 'connect' : 'secureConnect', () => {
      if (this.closed) return
      this.#to('open')
      raw.setNoDelay(true)
      this.owner.observer.upstreamConnected(this.owner.name, (this.clock.now() - this.#connectStarted) / 1000)
      this.client.resume()   // before the held bytes go on: their backpressure may pause it again
      this.#handOnEarly()
    })
    raw.connect({ host, port })
  }

  #onError(side: 'client' | 'upstream', err: NodeJS.ErrnoException): void {
    if (this.closed) return
    if (side === 'upstream' && this.state === 'connecting') {
      const code = err.code ?? 'UNKNOWN'
      this.owner.observer.upstreamConnectError(this.owner.name, code)
      if (this.#tcpConnected) this.owner.observer.tlsHandshakeFailed?.(this.owner.name, 'upstream', code)
      this.#closeClientCleanly()
      this.#finish('upstream_unreachable', err)
      return
    }
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      // A reset on one side is passed on as a reset to the other, as a real network path would. EPIPE is
      // a reset seen late: the peer reset after its FIN, when this side no longer read, and a write found it.
      const other = side === 'client' ? this.upstream : this.client
      resetSocket(other)
      this.destroy('reset')
      return
    }
    this.destroy('error', err)
  }

  #onSocketClose(): void {
    if (++this.#closedSockets >= 2 || this.state === 'hanging' || this.state === 'connecting') {
      this.destroy(this.#firstEnd ?? 'client_close')
    }
  }

  #closeClientCleanly(): void {
    const c = this.client
    c.removeAllListeners('data')
    c.on('data', () => {})
    c.resume()
    endThenDestroy(c, this.clock)
  }

  /** RST both sides (a fault's doing, or a reset passed on). */
  reset(reason: string): void {
    if (this.closed) return
    resetSocket(this.client)
    resetSocket(this.upstream)
    this.destroy(reason)
  }

  /** FIN both sides once written data is flushed; what comes in after is discarded. */
  close(reason: string): void {
    if (this.closed) return
    for (const s of [this.client, this.upstream]) {
      s.removeAllListeners('data')
      s.removeAllListeners('end')
      s.on('data', () => {})
      s.resume()
    }
    this.up.destroyStages()
    this.down.destroyStages()
    if (this.upstream.connecting || this.state !== 'open') destroySocket(this.upstream)
    else endThenDestroy(this.upstream, this.clock)
    endThenDestroy(this.client, this.clock)
    this.#finish(reason)
  }

  /** Forward nothing more either way and tell neither side; the link ends when either side leaves. */
  silence(reason: string, onReuse?: () => void): void {
    if (this.closed || this.state === 'silenced') return
    this.#to('silenced')
    this.reason = reason
    this.up.destroyStages()
    this.down.destroyStages()
    // `onReuse` given: what arrives next, bytes or FIN, gets a reset on both sides (nothing is forwarded).
    const reused = () => { if (!this.closed) onReuse!(); this.reset(reason) }
    for (const s of [this.client, this.upstream]) {
      s.removeAllListeners('data')
      s.removeAllListeners('end')
      s.on('data', onReuse ? reused : () => {})
      s.on('end', onReuse ? reused : () => this.destroy(reason))
      s.resume()
    }
  }

  /** The only way a link ends; idempotent. Sockets are destroyed, stages and timers cancelled.
   *  Logging is the observer's (src/observe/log-observer.ts): one debug line at close, rate-limited warnings. */
  destroy(reason: string, err?: Error): void {
    if (this.closed) return
    destroySocket(this.client)
    destroySocket(this.upstream)
    this.#finish(reason, err)
  }

  #finish(reason: string, err?: Error): void {
    if (this.closed) return
    this.#to('closed')
    this.reason = reason
    this.up.destroyStages()
    this.down.destroyStages()
    this.#connectTimer?.cancel()
    this.owner.observer.linkClosed(this.owner.name, this, reason, err)
    this.owner.linkClosed(this)
  }

  // What observers read (ObservedLink, src/observe/observer.ts) --------------------------------------

  /** Bytes read from the client / from the upstream. */
  get bytesUpstream(): number { return this.up.bytes }
  get bytesDownstream(): number { return this.down.bytes }
  /** Bytes written to the upstream / to the client. */
  get bytesSentUpstream(): number { return this.upstream.bytesWritten ?? 0 }
  get bytesSentDownstream(): number { return this.client.bytesWritten ?? 0 }
  /** The proxy's listen address and upstream as it names them ('' and the target for an owner without). */
  get listener(): string { return this.owner.address ?? '' }
  get upstreamAddress(): string {
    if (this.owner.upstream !== undefined) return this.owner.upstream
    const { host, port } = this.owner.upstreamTarget()
    return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  }
  get faultNames(): string[] { return [...this.applied.keys()].map(f => f.name) }
}

const NONE_APPLIED: ReadonlyMap<Fault, readonly Node[]> = new Map()

/** RST, where there is a TCP connection to reset (under TLS: the TCP socket beneath). */
function resetSocket(s: net.Socket): void {
  if (s.destroyed) return
  const raw = rawSocket(s)
  if (raw.destroyed || raw.connecting || !(raw as unknown as { _handle?: unknown })._handle) { s.destroy(); raw.destroy(); return }
  raw.resetAndDestroy()
  if (raw !== s) s.destroy()
}

/** Destroy a socket and, under TLS, the TCP socket beneath it. */
function destroySocket(s: net.Socket): void {
  s.destroy()
  const raw = rawSocket(s)
  if (raw !== s) raw.destroy()
}

/** end(), then destroy once flushed — or after a grace period if the peer never reads. */
function endThenDestroy(s: net.Socket, clock: Clock): void {
  if (s.destroyed) return
  const timer = clock.setTimeout(() => destroySocket(s), CLOSE_GRACE_MS)
  s.once('close', () => timer.cancel())
  s.end(() => destroySocket(s))
}

/**
 * What a fault's stage sees of its link (the SDK's LinkView): a small object with prototype methods, one per
 * stage, rather than a bag of closures. Behaviors call these as methods (`link.reset()`).
 */
class StageView implements LinkView {
  readonly id: number
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  readonly #link: Link
  readonly #fault: Fault
  #dropped = false
  #corrupted = false
  constructor(link: Link, fault: Fault, readonly stream: Stream, readonly acted: (action: StageAction) => void) {
    this.#link = link
    this.#fault = fault
    this.id = link.id
    this.log = link.log
    this.clock = link.clock
    this.random = link.owner.random
  }
  lastActivity(): number { return this.#link.lastActive }
  reset(): void { this.acted('reset'); this.#link.reset(this.#fault.type) }
  close(): void { this.acted('closed'); this.#link.close(this.#fault.type) }
  silence(): void { this.acted('silenced'); this.#link.silence(this.#fault.type) }
  forget(): void { this.acted('silenced'); this.#link.silence(this.#fault.type, () => this.acted('reset')) }
  dropped(n: number): void {
    if (!this.#dropped) { this.#dropped = true; this.acted('dropped') }
    this.#link.owner.observer.bytesDropped(this.#link.owner.name, this.stream, n)
  }
  corrupted(n: number): void {
    if (!this.#corrupted) { this.#corrupted = true; this.acted('corrupted') }
    this.#link.owner.observer.bytesCorrupted(this.#link.owner.name, this.stream, n)
  }
}
