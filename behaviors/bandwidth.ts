import { defineBehavior, Type, type Timer } from '../src/behavior.js'

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
    'everything (a stall that can be healed; unlike Toxiproxy, where 0 means unlimited). On removal, held bytes are ' +
    'sent at once, in order, then the FIN if one was held.',
  attributes: Type.Object({
    rate: Type.Integer({
      minimum: 0, default: 0,
      description: 'KB/s (1 KB = 1000 bytes, so also bytes per ms); 0 holds all data until the fault is removed',
    }),
  }),
  stage({ rate }, link, next) {
    const queue: Buffer[] = []
    const slice = Math.max(1, Math.floor(rate * TICK_MS))
    let held = 0
    let ended = false     // a FIN is held behind the queue
    let dead = false
    let free = 0          // clock time at which the meter lets the next byte go
    let timer: Timer | undefined

    const finish = () => {
      if (ended && held === 0 && !dead) { ended = false; next.end() }
    }
    const pump = () => {
      timer = undefined
      const now = link.clock.now()
      free = Math.max(free, now - MAX_CATCH_UP_MS)
      while (held > 0 && free <= now + 0.5 && !dead) {
        const first = queue[0]!
        let piece = first
        if (first.length > slice) {
          piece = first.subarray(0, slice)
          queue[0] = first.subarray(slice)
        } else {
          queue.shift()
        }
        held -= piece.length
        free += piece.length / rate
        next.write(piece)
      }
      if (dead) return
      if (held > 0) timer = link.clock.setTimeout(pump, free - now)
      else finish()
    }

    return {
      get held() { return held },
      write(chunk) {
        if (chunk.length === 0) return
        if (held === 0) free = Math.max(free, link.clock.now())   // idle: no credit saved up
        queue.push(chunk)
        held += chunk.length
        if (rate > 0 && timer === undefined) pump()
      },
      end() {
        ended = true
        finish()
      },
      flush() {
        timer?.cancel(); timer = undefined
        const all = queue.splice(0)
        held = 0
        for (const chunk of all) if (!dead) next.write(chunk)
        finish()
      },
      destroy() {
        dead = true
        timer?.cancel(); timer = undefined
        queue.length = 0
        held = 0
      },
    }
  },
})
