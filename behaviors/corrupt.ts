import { defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'corrupt',
  summary: 'Flip one random bit in randomly chosen bytes (or in every Nth byte), leaving all others intact.',
  notes: 'Each byte is hit independently with `probability` (the gap to the next hit is drawn geometrically, so a ' +
    'small probability costs nothing per byte); with `every_bytes` N > 0, the Nth, 2Nth, … bytes of the stream are ' +
    'hit instead and `probability` is ignored. A hit byte has exactly one of its 8 bits flipped, chosen at random. ' +
    'Lengths and order never change. Nothing is held: on removal, bytes simply pass unaltered.',
  attributes: Type.Object({
    probability: Type.Number({ minimum: 0, maximum: 1, default: 0.0001, description: 'chance that a byte has one bit flipped (0..1)' }),
    every_bytes: Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: 'flip one bit in every Nth byte instead (bytes); 0 = off' }),
  }),
  stage({ probability, every_bytes }, link, next) {
    // The number of bytes to pass untouched before the next hit.
    let gap: () => number
    if (every_bytes > 0) gap = () => every_bytes - 1
    else if (probability >= 1) gap = () => 0
    else if (probability <= 0) gap = () => Infinity
    else {
      const logQ = Math.log1p(-probability)
      gap = () => Math.floor(Math.log1p(-link.random()) / logQ)
    }
    let skip = gap()
    return {
      held: 0,
      write(chunk) {
        if (skip >= chunk.length) { skip -= chunk.length; next.write(chunk); return }
        const out = Buffer.from(chunk)   // never alter a buffer someone else may still hold
        let i = skip
        let hits = 0
        while (i < out.length) {
          out[i] = out[i]! ^ (1 << Math.floor(link.random() * 8))
          hits++
          i += 1 + gap()
        }
        skip = i - out.length
        link.corrupted(hits)
        next.write(out)
      },
      end: () => next.end(),
      destroy() {},
    }
  },
})
