import { defineBehavior, ms, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'slow_open',
  summary: 'Delay the upstream connection of each new link by delay ms, and so its first bytes both ways.',
  notes: 'The client is accepted at once; what it sends is held (up to 512 KiB, then it is paused) until the upstream ' +
    'connection is made, then passed on in order. A client that leaves during the delay ends its link at once, and ' +
    'the upstream never sees a connection. ' +
    'Links already open are not touched, and removal affects only new connections.',
  attributes: Type.Object({
    delay: ms('delay before connecting upstream', 1000),
  }),
  connect: ({ delay }) => ({ action: 'delay', ms: delay }),
})
