import { defineBehavior, ms, Type, type Timer } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'limit_time',
  summary: 'Close the link duration ms after the fault started on it (link opened or fault added).',
  notes: 'Data passes untouched until then. `fin` closes both sides cleanly, `rst` resets them. With stream `both` ' +
    'both stages have the same deadline and the first to fire closes the link. Updating the attributes restarts the clock; on removal the link stays open.',
  attributes: Type.Object({
    duration: ms('lifetime of the link, counted from when the fault started on it', 60_000),
    mode: Type.Union([Type.Literal('fin'), Type.Literal('rst')], {
      default: 'fin',
      description: 'fin: close both sides cleanly; rst: reset both sides',
    }),
  }),
  stage({ duration, mode }, link, next) {
    let timer: Timer | undefined = link.clock.setTimeout(() => {
      timer = undefined
      if (mode === 'rst') link.reset(); else link.close()
    }, duration)
    return {
      held: 0,
      write: chunk => next.write(chunk),
      end: () => next.end(),
      destroy() { timer?.cancel(); timer = undefined },
    }
  },
})
