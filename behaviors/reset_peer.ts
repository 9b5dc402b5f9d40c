import { defineBehavior, ms, Type, type Timer } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'reset_peer',
  summary: 'On the first data or FIN, wait timeout ms, then reset (RST) both sides.',
  notes: 'The stage arms on the first chunk or FIN it sees after it starts (link opened, or fault added); without ' +
    'traffic it never fires. From then on data on the stream is dropped (counted), as in Toxiproxy, and timeout ms ' +
    'later both sockets are reset: the peers see ECONNRESET. timeout 0 resets on the next tick. On removal a pending ' +
    'reset is cancelled and the stream passes through again (dropped bytes stay lost; a held FIN is passed on).',
  attributes: Type.Object({
    timeout: ms('wait after the first data or FIN before the reset'),
  }),
  stage({ timeout }, link) {
    let timer: Timer | undefined
    let armed = false
    const arm = () => {
      if (armed) return
      armed = true
      timer = link.clock.setTimeout(() => { timer = undefined; link.reset() }, timeout)
    }
    return {
      held: 0,
      write(chunk) { link.dropped(chunk.length); arm() },
      end() { arm() },
      flush() { timer?.cancel(); timer = undefined },
      destroy() { timer?.cancel(); timer = undefined },
    }
  },
})
