import { defineBehavior, Type, type Timer } from '../src/behavior.js'

export default defineBehavior({
  type: 'slicer',
  summary: 'Split every chunk into pieces of average_size ± size_variation bytes, delay µs apart.',
  notes: 'delay is in MICROSECONDS (Toxiproxy\'s unit), not milliseconds. Timers have a 1 ms resolution: shorter ' +
    'delays are kept on average by sending several pieces per tick. Pieces are always at least 1 byte: ' +
    'average_size 0 counts as 1 and size_variation is capped at average_size - 1 (Toxiproxy panicked there). ' +
    'Bytes are never lost or reordered and the FIN follows the last piece. On removal, what is held is sent at ' +
    'once, unsliced, then the FIN if one was held.',
  attributes: Type.Object({
    average_size: Type.Integer({ minimum: 0, default: 64, description: 'mean size of a piece, in bytes (0 counts as 1)' }),
    size_variation: Type.Integer({
      minimum: 0, default: 0,
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
    const gap = delay / 1000    // ms
    const queue: Buffer[] = []
    let held = 0
    let ended = false
    let dead = false
    let free = 0                // clock time at which the next piece may go
    let timer: Timer | undefined

    const size = () => spread === 0 ? average : Math.max(1, Math.round(average + (link.random() * 2 - 1) * spread))
    const finish = () => {
      if (ended && held === 0 && !dead) { ended = false; next.end() }
    }
    const pump = () => {
      timer = undefined
      const now = link.clock.now()
      // A timer cannot fire sooner than 1 ms: catch up at most 1 ms worth of sub-millisecond gaps.
      let at = Math.max(free, now - 1)
      while (held > 0 && at <= now + 0.5 && !dead) {
        const first = queue[0]!
        const n = size()
        let piece = first
        if (first.length > n) {
          piece = first.subarray(0, n)
          queue[0] = first.subarray(n)
        } else {
          queue.shift()
        }
        held -= piece.length
        at += gap
        next.write(piece)
      }
      free = at
      if (dead) return
      if (held > 0) timer = link.clock.setTimeout(pump, free - now)
      else finish()
    }

    return {
      get held() { return held },
      write(chunk) {
        if (chunk.length === 0) return
        if (held === 0) free = Math.max(free, link.clock.now())
        queue.push(chunk)
        held += chunk.length
        if (timer === undefined) pump()
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
