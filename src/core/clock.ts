// Time for the data path: a monotonic now() in ms and cancellable timers. Behaviors use only this.
import { performance } from 'node:perf_hooks'   // the global goes through a lazy getter on every call
export interface Timer { cancel(): void }
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): Timer
}

/** The longest timer Node holds: a longer one fires after 1 ms (with a warning), so timers are capped here. */
export const MAX_TIMER_MS = 2 ** 31 - 1

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)))
    return { cancel: () => clearTimeout(handle) }
  },
}

/**
 * A clock that moves only when told to: timers fire, in order, inside advance(). Give it to a
 * Registry or startCoquin (`clock`) to decide, to the tick, when a fault acts — in coquin's tests and
 * in yours.
 */
export class ManualClock implements Clock {
  #now = 0
  readonly #timers = new Set<{ at: number; fn: () => void }>()
  /** Timers waiting to fire. */
  get pending(): number { return this.#timers.size }
  now(): number { return this.#now }
  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.#now + Math.max(0, ms), fn }
    this.#timers.add(timer)
    return { cancel: () => { this.#timers.delete(timer) } }
  }
  advance(ms: number): void {
    const end = this.#now + ms
    for (;;) {
      let next: { at: number; fn: () => void } | undefined
      for (const timer of this.#timers) if (timer.at <= end && (!next || timer.at < next.at)) next = timer
      if (!next) break
      this.#timers.delete(next)
      this.#now = Math.max(this.#now, next.at)
      next.fn()
    }
    this.#now = end
  }
}
