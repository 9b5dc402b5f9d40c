import { MAX_COUNT, defineBehavior, pacedStage, Type } from '../src/faults/behavior.js'

/** At most this many ms' worth of bytes leave per tick, so output is smooth rather than bursty. */
const TICK_MS = 10
/** How far the meter may fall behind the clock (a late timer, a busy event loop) and still catch up. */
const MAX_CATCH_UP_MS = 50

export default defineBehavior({
  type: 'bandwidth',
  summary: 'Limit the stream to rate KB/s (bytes per ms), released smoothly; 0 stalls it.',
  notes: 'rate is in decimal kilobytes per second (1 KB = 1000 bytes), which is also bytes per millisecond. Chunks ' +
    'are metered and split so that at most ~10 ms worth of bytes leave at once; order is kept and the FIN follows the ' +
    'last held byte. Memory stays bounded: the core pauses the source while the stage holds too much. rate 0 holds ' +
    'everything: a stall that can be healed, as in Toxiproxy, whose loop never sends at rate 0 (testcontainers\' ' +
    'setConnectionCut relies on it). On removal, held bytes are ' +
    'sent at once, in order, then the FIN if one was held.',
  attributes: Type.Object({
    rate: Type.Integer({
      minimum: 0, maximum: MAX_COUNT, default: 0,
      description: 'KB/s (1 KB = 1000 bytes, so also bytes per ms); 0 holds all data until the fault is removed',
    }),
  }),
  stage({ rate }, link, next) {
    const slice = Math.max(1, Math.floor(rate * TICK_MS))
    return pacedStage(link, next, { size: () => slice, cost: n => n / rate, catchUpMs: MAX_CATCH_UP_MS, stalled: rate === 0, action: 'throttled' })
  },
})
