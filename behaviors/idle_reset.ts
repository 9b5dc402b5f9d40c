import { defineBehavior, ms, Type, type Timer } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'idle_reset',
  summary: 'End a link after idle ms with no byte in either direction, as a NAT or load balancer forgets a flow.',
  notes: 'Data passes untouched. The idle clock starts at the last byte read from either side, or when the fault ' +
    'was added if that is later. `rst` resets both sides, `fin` closes both sides cleanly, `silent` forwards nothing ' +
    'more and tells neither side: a pooled client connection that looks alive but whose next request is never ' +
    'answered. `rst_on_reuse` is what a NAT or cloud load balancer whose flow table expired does: it forwards nothing ' +
    'more and tells no one, then answers the next bytes from either side (the pooled connection\'s next request) ' +
    'with a reset on both sides, never forwarded: the request written on the reused connection fails. ' +
    'With stream `both` either direction\'s stage may act first; the result is the same. On removal the ' +
    'timer is cancelled and nothing else changes (a link already silenced stays silenced).',
  attributes: Type.Object({
    idle: ms('time with no traffic in either direction before acting', 60_000),
    mode: Type.Union([Type.Literal('rst'), Type.Literal('fin'), Type.Literal('silent'), Type.Literal('rst_on_reuse')], {
      default: 'rst',
      description: 'rst: reset both sides; fin: close both sides; silent: forward nothing more and tell neither side; ' +
        'rst_on_reuse: as silent, then reset both sides at the next bytes from either',
    }),
  }),
  stage({ idle, mode }, link, next) {
    const started = link.clock.now()
    let timer: Timer | undefined
    // One timer per stage, re-armed lazily: traffic only moves lastActivity(), never the timer.
    const check = () => {
      timer = undefined
      const remaining = Math.max(link.lastActivity(), started) + idle - link.clock.now()
      // At most idle, but (last + idle) - now may round past the longest timer (2^31 - 1 ms) at idle's maximum.
      if (remaining > 0) { timer = link.clock.setTimeout(check, Math.min(idle, remaining)); return }
      if (mode === 'fin') link.close()
      else if (mode === 'silent') link.silence()
      else if (mode === 'rst_on_reuse') link.forget()
      else link.reset()
    }
    timer = link.clock.setTimeout(check, idle)
    return {
      held: 0,
      write: chunk => next.write(chunk),
      end: () => next.end(),
      destroy() { timer?.cancel(); timer = undefined },
    }
  },
})
