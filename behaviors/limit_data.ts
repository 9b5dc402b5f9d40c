import { MAX_COUNT, defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'limit_data',
  summary: 'Forward at most bytes on the stream, then close the link.',
  notes: 'Counts the bytes this stage forwarded (per link and stream; an update starts a new count). The chunk ' +
    'that reaches the limit is truncated (the rest is counted as dropped), then the link is closed (FIN both sides ' +
    'once written data is flushed). With bytes 0 the link closes on the first chunk, as in Toxiproxy. Removal lets ' +
    'the stream pass through unlimited.',
  attributes: Type.Object({
    bytes: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'bytes forwarded on the stream before the link is closed' }),
  }),
  stage({ bytes }, link, next) {
    let sent = 0
    let done = false
    return {
      held: 0,
      write(chunk) {
        if (done) { link.dropped(chunk.length); return }
        const room = bytes - sent
        const piece = chunk.length > room ? chunk.subarray(0, room) : chunk
        if (piece.length < chunk.length) link.dropped(chunk.length - piece.length)
        if (piece.length > 0) { sent += piece.length; next.write(piece) }
        if (sent >= bytes) { done = true; link.close() }
      },
      end() { next.end() },
      destroy() { done = true },
    }
  },
})
