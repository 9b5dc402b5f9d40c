import { defineBehavior, pacedStage, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'blackhole',
  summary: 'Nothing gets through and neither side is told; `drop` loses the bytes, `hold` delivers them on removal.',
  notes: 'The connection stays open and nothing arrives. `drop` (the default): bytes are read and thrown away ' +
    '(counted as dropped), so the sender never blocks, and bytes sent while it was active are lost for good — a ' +
    'request in flight never gets its answer, even after healing. `hold` is a blip that heals like a real one ' +
    '(packets lost, then retransmitted): bytes are held, in order, up to the high-water mark (512 KiB per direction; ' +
    'then the sender is paused, as a full TCP window would), and on removal they are delivered, so the request in ' +
    'flight completes late. Either way a FIN is held back and passed on when the fault is removed. An update hands on ' +
    'what `hold` held.',
  attributes: Type.Object({
    mode: Type.Union([Type.Literal('drop'), Type.Literal('hold')], {
      default: 'drop', description: 'drop: bytes are lost; hold: bytes are held (bounded, with backpressure) and delivered on removal',
    }),
  }),
  stage({ mode }, link, next) {
    if (mode === 'hold') return pacedStage(link, next, { size: () => 1, cost: () => 0, catchUpMs: 0, stalled: true, action: 'held' })
    return {
      held: 0,
      write(chunk) { link.dropped(chunk.length) },
      end() { /* held back: the core passes the FIN on when the stage is removed */ },
      destroy() {},
    }
  },
})
