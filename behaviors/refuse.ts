import { defineBehavior, Type } from '../src/behavior.js'

export default defineBehavior({
  type: 'refuse',
  summary: 'Reset every new connection at once (RST), before any upstream connection is made.',
  notes: 'The listener accepts and resets at once: the client\'s connect, or its first read or write, fails with ' +
    'ECONNRESET, as with a crashed service behind a load balancer. Links already open are not touched, and removal ' +
    'affects only new connections.',
  attributes: Type.Object({}),
  connect: () => ({ action: 'refuse' }),
})
