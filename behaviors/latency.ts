import { MAX_TIMER_MS, defineBehavior, ms, Type, type Random } from '../src/faults/behavior.js'

/** A standard normal draw (Box–Muller). */
function gaussian(random: Random): number {
  const u = 1 - random()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random())
}

/** Pareto (shape 3), shifted and scaled to mean 0 and standard deviation 1, heavy right tail. */
function pareto(random: Random): number {
  return ((1 - random()) ** (-1 / 3) - 1.5) / Math.sqrt(0.75)
}


const spread: Record<string, (r: Random) => number> = {
  uniform: r => r() * 2 - 1,
  normal: gaussian,
  pareto,
  paretonormal: r => 0.25 * pareto(r) + 0.75 * gaussian(r),
}

export default defineBehavior({
  type: 'latency',
  summary: 'Delay every chunk by latency ± jitter ms, keeping byte order.',
  notes: 'jitter is the half-width of the spread for `uniform` and the standard deviation for `normal`, `pareto` ' +
    '(heavy tail) and `paretonormal` (netem\'s meanings). A delay never goes below 0 and never reorders bytes: a chunk ' +
    'waits at least as long as the one before it. The FIN is delayed like data. On removal, held chunks are sent at once.',
  attributes: Type.Object({
    latency: ms('delay added to each chunk'),
    jitter: ms('spread around latency'),
    distribution: Type.Union([Type.Literal('uniform'), Type.Literal('normal'), Type.Literal('pareto'), Type.Literal('paretonormal')],
      { default: 'uniform', description: 'shape of the jitter' }),
  }),
  stage({ latency, jitter, distribution }, link, next) {
    const draw = spread[distribution]!
    const queue: { at: number; chunk: Buffer | null }[] = []
    let held = 0
    let last = 0
    let acted = false
    let timer: { cancel(): void } | undefined
    // latency + jitter, or a far tail of normal or pareto, may pass the longest timer: cap it there.
    const delay = () => (jitter > 0 ? Math.min(MAX_TIMER_MS, Math.max(0, latency + draw(link.random) * jitter)) : latency)
    const release = () => {
      timer = undefined
      const now = link.clock.now() + 0.5
      while (queue.length > 0 && queue[0]!.at <= now) {
        const { chunk } = queue.shift()!
        if (chunk === null) { next.end(); continue }
        held -= chunk.length
        next.write(chunk)
      }
      if (queue.length > 0) timer = link.clock.setTimeout(release, Math.min(MAX_TIMER_MS, queue[0]!.at - link.clock.now()))
    }
    const push = (chunk: Buffer | null) => {
      const now = link.clock.now()
      const d = delay()
      if (d <= 0 && queue.length === 0) {
        if (chunk === null) next.end(); else next.write(chunk)
        return
      }
      if (!acted) { acted = true; link.acted('delayed') }
      last = Math.max(last, now + d)
      queue.push({ at: last, chunk })
      if (chunk) held += chunk.length
      // (now + d) - now may be d plus a rounding error: past the longest timer at d = 2^31 - 1 ms.
      timer ??= link.clock.setTimeout(release, Math.min(MAX_TIMER_MS, last - now))
    }
    return {
      get held() { return held },
      write: chunk => push(chunk),
      end: () => push(null),
      flush() {
        timer?.cancel(); timer = undefined
        for (const { chunk } of queue.splice(0)) if (chunk) next.write(chunk); else next.end()
        held = 0
      },
      destroy() { timer?.cancel(); timer = undefined; queue.length = 0; held = 0 },
    }
  },
})
