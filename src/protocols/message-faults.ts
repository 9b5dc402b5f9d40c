// What the message layers (HTTP, Redis, PostgreSQL) share about their faults: a fault's `attributes.match`
// compiled once per attributes object, and the walk over a proxy's faults for one message — match, ask the
// behavior, draw toxicity/after/count, count the hit.
import type { FaultAction, HttpContext } from '../faults/behavior.js'
import type { Fault } from '../faults/fault.js'
import type { ProtocolHost } from './layer.js'

/** A protocol's match: `check` for the behavior's validate(), `of` the compiled matcher of a fault's attributes. */
export function matchCompiler<S, M>(compile: (spec: S | undefined) => (m: M) => boolean): {
  check(spec: unknown): string | undefined
  of(attributes: Readonly<Record<string, unknown>>): (m: M) => boolean
} {
  const cache = new WeakMap<object, (m: M) => boolean>()
  return {
    /** A message for InvalidAttributesError, or undefined if the spec compiles. */
    check(spec) {
      try {
        compile(spec as S | undefined)
        return undefined
      } catch (err) {
        return (err as Error).message
      }
    },
    /** Compiled once (attributes are frozen and replaced on update); a spec that does not compile (checked at creation) never matches. */
    of(attributes) {
      let m = cache.get(attributes)
      if (!m) {
        try { m = compile(attributes.match as S | undefined) } catch { m = () => false }
        cache.set(attributes, m)
      }
      return m
    },
  }
}

/** A Redis or PostgreSQL fault's answer for one message. */
export interface MessageAction {
  readonly action: 'error' | 'delay' | 'abort'
  readonly mode?: 'rst' | 'fin' | 'hang'
}

/** What `fault_acted` records for it. */
export function actedOf(a: MessageAction): FaultAction {
  if (a.action === 'abort') return a.mode === 'rst' ? 'reset' : a.mode === 'fin' ? 'closed' : 'silenced'
  return a.action === 'error' ? 'answered' : 'delayed'
}

/**
 * Every fault of the proxy that acts on this protocol's messages, in order: those whose match holds, whose
 * behavior answers, and whose draw hits are counted (applied, message `index`) and handed to `take`. The
 * message's view is made by `view` on first need only (no fault of the protocol: no work).
 */
export function forEachHit<M, A extends MessageAction>(
  host: ProtocolHost, index: number,
  hook: (f: Fault) => ((attributes: never, message: M, ctx: HttpContext) => A | null) | undefined,
  matcherOf: (attributes: Readonly<Record<string, unknown>>) => (m: M) => boolean,
  view: () => M, ctx: HttpContext, take: (a: A, f: Fault) => void,
  accepts: (a: A) => boolean = () => true,
): void {
  let message: M | undefined
  for (const f of host.owner.faults) {
    const ask = hook(f)
    if (!ask || (f.only !== undefined && !f.only(host.client.address))) continue
    message ??= view()
    if (!matcherOf(f.attributes)(message)) continue
    let a: A | null
    try {
      a = ask.call(f.behavior, f.attributes as never, message, ctx)
    } catch (err) {
      host.log.warn({ err, toxic: f.name, link: host.id }, `${f.type} failed`)
      continue
    }
    if (!a || !accepts(a) || !f.decide(host.random)) continue
    host.applied(f, index, actedOf(a))
    take(a, f)
  }
}
