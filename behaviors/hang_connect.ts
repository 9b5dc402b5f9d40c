import { defineBehavior, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'hang_connect',
  summary: 'Accept new connections but never connect upstream: the client waits forever for an answer.',
  notes: 'What the client sends is read and discarded; the link ends when the client closes. Links already open are ' +
    'not touched. On removal, hanging links are closed (FIN) so that clients retry.',
  attributes: Type.Object({}),
  connect: () => ({ action: 'hang' }),
})
