// All that a behavior may import. A behavior is one file in behaviors/: a name, an attribute schema
// (TypeBox, the single source for validation, defaults, the config JSON Schema and the docs) and
// either a stage factory (a fault on the data path) or a connect decision (a fault at accept time).
import { Type, type TObject, type Static } from '@sinclair/typebox'
import type { Clock, Timer } from './clock.js'
import type { Logger } from './log.js'
import type { Random } from './random.js'

export { Type }
export type { Static, TObject, Clock, Timer, Logger, Random }

/** A direction of a link: `upstream` is client → server, `downstream` is server → client. */
export type Stream = 'upstream' | 'downstream'

/** Where a stage hands chunks on: the next stage, or the destination socket. */
export interface Sink {
  write(chunk: Buffer): void
  /** The source's FIN, passed on once everything before it has been written. */
  end(): void
}

/** What a stage may see and do of its link. */
export interface LinkView {
  readonly id: number
  readonly stream: Stream
  readonly log: Logger
  readonly clock: Clock
  readonly random: Random
  /** Clock time of the last byte read from either side. */
  lastActivity(): number
  /** RST both sides now. */
  reset(): void
  /** FIN both sides after what was written is flushed; what either side sends next is discarded. */
  close(): void
  /** Forward nothing more either way and tell neither side (a load balancer that forgot the flow). */
  silence(): void
  /** Count bytes the fault threw away or altered. */
  dropped(bytes: number): void
  corrupted(bytes: number): void
}

export interface Stage {
  /** Take a chunk; pass chunks on with next.write(), in order. */
  write(chunk: Buffer): void
  /** The source sent FIN: pass it on with next.end() once nothing is held before it. */
  end(): void
  /** Bytes held: the core pauses the source while held + the destination's buffer is over the mark. */
  readonly held: number
  /** The fault was removed: hand on what is held now. Without it, held bytes are handed on as they are. */
  flush?(): void
  /** Cancel timers and let go of held bytes; called on every path, once. */
  destroy(): void
}

/** What a connection-level fault does to a new client connection. */
export type ConnectAction =
  | { action: 'pass' }
  | { action: 'refuse' }
  | { action: 'hang' }
  | { action: 'delay'; ms: number }

export interface Behavior<S extends TObject = TObject> {
  /** The API's toxic type, and the file's name in behaviors/. */
  readonly type: string
  /** One line for the CLI listing and the README. */
  readonly summary: string
  /** Longer notes for the README: semantics, what removal does. */
  readonly notes?: string
  readonly attributes: S
  readonly protocols?: readonly ('tcp' | 'http')[]
  /** A fault on the data path: one stage per link × stream. */
  stage?(attributes: Readonly<Static<S>>, link: LinkView, next: Sink): Stage
  /** A fault at accept time, before the upstream connection is made. */
  connect?(attributes: Readonly<Static<S>>, random: Random): ConnectAction
}

export function defineBehavior<S extends TObject>(b: Behavior<S>): Behavior {
  return b as unknown as Behavior
}

/** Milliseconds, a non-negative integer. */
export const ms = (description: string, dflt = 0) =>
  Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: dflt, description: `${description} (ms)` })

/** A stage that forwards everything untouched: for faults whose effect is elsewhere. */
export function passStage(next: Sink): Stage {
  return { held: 0, write: c => next.write(c), end: () => next.end(), destroy() {} }
}
