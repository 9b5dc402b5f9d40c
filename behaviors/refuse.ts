import { defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'refuse',
  summary: 'Refuse new connections, before any upstream connection is made: ECONNREFUSED, as a closed port.',
  notes: 'At toxicity 1 with no after/count, every connect is refused for real: the proxy\'s listener is closed ' +
    'while the fault is in force, so the client\'s connect fails with ECONNREFUSED (a health checker sees a ' +
    'layer-4 "connection refused", as with `enabled: false`), and it listens again on the same port once the ' +
    'fault is removed. When it hits only some connections (toxicity below 1, after/count), the listener must stay ' +
    'open: those are accepted and reset at once (ECONNRESET on the client\'s connect or first read). Links ' +
    'already open are not touched.',
  attributes: Type.Object({}),
  connect: () => ({ action: 'refuse' }),
})
