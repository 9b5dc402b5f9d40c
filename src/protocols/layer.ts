// The protocol-layer interface. A layer frames both streams of a link into messages (HTTP requests and
// responses; later RESP commands and replies, PostgreSQL messages) and lets per-message faults act on them.
// It is two stages at the head of the link's chains, one per direction, sharing the layer's state; the
// faults' data-path stages follow them. What it cannot frame it hands on raw (the link falls back to TCP,
// counted and recorded once) or, if the proxy says so, closes.
//
// A link knows a layer only through this file: link.ts asks `layerOf(protocol)` (src/protocols/index.ts)
// and calls `create()` with a ProtocolHost. Adding a protocol is a folder here, its behaviors in
// behaviors/, and one line in src/protocols/index.ts.
import type { Sink, Stage, FaultAction } from '../faults/behavior.js'
import type { Fault } from '../faults/fault.js'
import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { Random } from '../core/random.js'
import type { Observer } from '../observe/observer.js'
import type { Link, LinkOwner } from '../datapath/link.js'

/** What a link offers the protocol layer at its head. */
export interface ProtocolHost {
  readonly id: number
  /** The link, for observer calls (observer methods take it). */
  readonly link: Link
  /** The proxy: its name, faults (read per message) and protocol options (`header_faults`, `http_fallback`…). */
  readonly owner: LinkOwner
  readonly observer: Observer
  /** The client's address, read on first use (reading it at every link's start slows every socket). */
  readonly client: { readonly address: string; readonly port: number }
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  /** RST both sides now, after what the faults' stages hold was handed on. */
  reset(reason: string): void
  /** FIN both sides once what was written is flushed (the faults' stages hand on what they hold first). */
  close(reason: string): void
  /** Forward nothing more either way and tell neither side, now (a stuck server: `mode: hang`). */
  silence(reason: string): void
  /**
   * A stream cannot be framed (`detail`: the framer's words): counted and recorded once per link. The layer
   * hands the rest of the link on raw.
   */
  fallback(stream: 'upstream' | 'downstream', detail: string): void
  /** A fault hit message `index` of the link and will act on it as `action` says: counted and recorded. */
  applied(fault: Fault, index: number, action: FaultAction): void
  /** A fault that hit earlier acted again, on message `index` (a forgotten link reset on reuse): recorded only. */
  acted(fault: Fault, index: number, action: FaultAction): void
}

export interface ProtocolLayer {
  /** The proxy's `protocol` value. */
  readonly name: string
  /** The two stages heading the link's chains; `next` is where each hands on (the faults' stages, then the socket). */
  create(host: ProtocolHost, next: { upstream: Sink; downstream: Sink }): { upstream: Stage; downstream: Stage }
}
