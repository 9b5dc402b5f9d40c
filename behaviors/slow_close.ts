import { defineBehavior, ms, Type, type Timer } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'slow_close',
  summary: 'Pass data through, but hold the FIN for delay ms.',
  notes: 'Data is not touched; only the FIN (the source closing its side) is passed on delay ms after it arrived. ' +
    'On removal a held FIN is passed on at once.',
  attributes: Type.Object({
    delay: ms('how long the FIN is held'),
  }),
  stage({ delay }, link, next) {
    let timer: Timer | undefined
    let holding = false
    const release = () => {
      timer?.cancel(); timer = undefined
      if (holding) { holding = false; next.end() }
    }
    return {
      held: 0,
      write(chunk) { next.write(chunk) },
      end() {
        holding = true
        link.acted('delayed')
        timer = link.clock.setTimeout(release, delay)
      },
      flush: release,
      destroy() { timer?.cancel(); timer = undefined; holding = false },
    }
  },
})
