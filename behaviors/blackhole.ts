import { defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'blackhole',
  summary: 'Drop every byte silently; the connection stays open and neither side is told.',
  notes: 'Bytes are read and thrown away (counted as dropped), so the sender never blocks; a FIN is held back too. ' +
    'Unlike `timeout`, it heals: on removal traffic flows again and a FIN held back is passed on. ' +
    'Bytes sent while it was active are lost for good.',
  attributes: Type.Object({}),
  stage(_attributes, link) {
    return {
      held: 0,
      write(chunk) { link.dropped(chunk.length) },
      end() { /* held back: the core passes the FIN on when the stage is removed */ },
      destroy() {},
    }
  },
})
