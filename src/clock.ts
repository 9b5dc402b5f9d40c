// Time for the data path: a monotonic now() in ms and cancellable timers. Behaviors use only this.
export interface Timer { cancel(): void }
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): Timer
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms))
    return { cancel: () => clearTimeout(handle) }
  },
}
