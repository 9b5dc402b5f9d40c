import { defineBehavior, ms, Type, type Timer } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'timeout',
  summary: 'Drop all data on the stream, then close the link after timeout ms (0: never).',
  notes: 'Every byte on the stream is thrown away (counted as dropped); a FIN still passes, as in Toxiproxy. With ' +
    'timeout > 0 the link is closed (FIN both sides) timeout ms after the fault started on it: when the link opened, ' +
    'or when the fault was added to an open link. timeout 0 holds the link open forever. Removing the fault closes ' +
    'the link (Toxiproxy\'s semantics: its stream is corrupt); updating it does not. For a drop that heals, use `blackhole`.',
  attributes: Type.Object({
    timeout: ms('close the link this long after the fault starts on it; 0 = never close, only drop'),
  }),
  stage({ timeout }, link, next) {
    let timer: Timer | undefined = timeout > 0
      ? link.clock.setTimeout(() => { timer = undefined; link.close() }, timeout)
      : undefined
    return {
      held: 0,
      write(chunk) { link.dropped(chunk.length) },
      end() { next.end() },
      flush(why) {
        if (why !== 'remove') return             // an update keeps the link and the new stage drops on
        timer?.cancel(); timer = undefined
        link.close()
      },
      destroy() { timer?.cancel(); timer = undefined },
    }
  },
})
