import { MAX_COUNT, defineBehavior, pacedStage, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'slicer',
  summary: 'Split every chunk into pieces of average_size ± size_variation bytes, delay µs apart.',
  notes: 'delay is in MICROSECONDS (Toxiproxy\'s unit), not milliseconds. Timers have a 1 ms resolution: shorter ' +
    'delays are kept on average by sending several pieces per tick. Pieces are always at least 1 byte: ' +
    'average_size 0 counts as 1 and size_variation is capped at average_size - 1 (Toxiproxy panicked there). ' +
    'Bytes are never lost or reordered and the FIN follows the last piece. On removal, what is held is sent at ' +
    'once, unsliced, then the FIN if one was held.',
  attributes: Type.Object({
    average_size: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 64, description: 'mean size of a piece, in bytes (0 counts as 1)' }),
    size_variation: Type.Integer({
      minimum: 0, maximum: MAX_COUNT, default: 0,
      description: 'bytes: each piece is average_size ± up to this much (capped at average_size - 1)',
    }),
    delay: Type.Integer({
      minimum: 0, maximum: 2 ** 31 - 1, default: 0,
      description: 'wait between pieces, in MICROSECONDS (µs, not ms)',
    }),
  }),
  stage({ average_size, size_variation, delay }, link, next) {
    const average = Math.max(1, average_size)
    const spread = Math.min(size_variation, average - 1)
    const size = () => spread === 0 ? average : Math.max(1, Math.round(average + (link.random() * 2 - 1) * spread))
    // A timer cannot fire sooner than 1 ms: sub-millisecond gaps catch up at most 1 ms at a time.
    return pacedStage(link, next, { size, cost: () => delay / 1000, catchUpMs: 1, action: 'sliced' })
  },
})
