import { defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'packet_loss',
  summary: 'Drop whole chunks at random, alone or in bursts; the connection stays open.',
  notes: 'Each chunk is dropped with probability `loss_rate`; with `correlation` c, the chance of a drop is ' +
    'c × (1 if the previous chunk was dropped, else 0) + (1 − c) × loss_rate: a two-state (Gilbert) model whose long-run ' +
    'drop rate stays loss_rate while drops come in bursts (mean burst length 1 / ((1 − c)(1 − loss_rate))). ' +
    'Over TCP a dropped chunk is lost data, not a retransmission: the stream is silently missing bytes. The FIN ' +
    'is never dropped. Nothing is held: on removal, chunks simply pass.',
  attributes: Type.Object({
    loss_rate: Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: 'share of chunks dropped (0..1)' }),
    correlation: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'weight of the previous drop decision in the next one (0..1): bursts' }),
  }),
  stage({ loss_rate, correlation }, link, next) {
    let previous: boolean | undefined
    return {
      held: 0,
      write(chunk) {
        const p = previous === undefined ? loss_rate : correlation * (previous ? 1 : 0) + (1 - correlation) * loss_rate
        previous = link.random() < p
        if (previous) link.dropped(chunk.length)
        else next.write(chunk)
      },
      end: () => next.end(),
      destroy() {},
    }
  },
})
