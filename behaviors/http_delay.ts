import { checkMatch, jittered, defineBehavior, httpMatch, ms, Type } from '../src/faults/behavior.js'


export default defineBehavior({
  type: 'http_delay',
  summary: 'Delay matching requests before forwarding them, or their response\'s head, or its body.',
  notes: 'HTTP proxies only. `request`: the request (and what the client sends after it) waits before going upstream. ' +
    '`response_head`: the response waits from the moment its head arrives. `response_body`: the head goes at once and ' +
    'the body waits. Bytes are never reordered: what comes after a delayed message waits behind it. jitter is the ' +
    'half-width of a uniform spread, or the standard deviation of a normal one; a delay is never below 0. On a request ' +
    'answered by coquin (http_status…) every phase delays the answer. `stream` is ignored.',
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    delay: ms('delay added'),
    jitter: ms('spread around delay'),
    distribution: Type.Union([Type.Literal('uniform'), Type.Literal('normal')], { default: 'uniform', description: 'shape of the jitter' }),
    phase: Type.Union([Type.Literal('request'), Type.Literal('response_head'), Type.Literal('response_body')],
      { default: 'request', description: 'what waits: the request, the response\'s head, or the response\'s body' }),
  }),
  validate: a => checkMatch(a.match),
  request: (a, _req, _fault, { random }) => ({ action: 'delay', phase: a.phase, ms: jittered(a.delay, a.jitter, a.distribution, random) }),
})
