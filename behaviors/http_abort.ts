import { MAX_COUNT, checkMatch, defineBehavior, httpMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'http_abort',
  summary: 'Forward matching requests, then break the connection before the response, after its head, or after N body bytes.',
  notes: 'HTTP proxies only. The request reaches the upstream (which does the work); the client does not get the whole ' +
    'response. `before_response` acts when the response head arrives (1xx interim responses pass), `after_head` right ' +
    'after the head, `after_bytes` after `bytes` bytes of the body as sent on the wire (chunk framing included), or at ' +
    'its end if it is shorter. `rst` resets both sides (ECONNRESET); `fin` closes them (a truncated response). ' +
    '`stream` is ignored.',
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    phase: Type.Union([Type.Literal('before_response'), Type.Literal('after_head'), Type.Literal('after_bytes')],
      { default: 'before_response', description: 'where the response is cut' }),
    bytes: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'body bytes passed before the cut, for after_bytes (bytes)' }),
    mode: Type.Union([Type.Literal('rst'), Type.Literal('fin')], { default: 'rst', description: 'rst: reset both sides; fin: close both sides' }),
  }),
  validate: a => checkMatch(a.match),
  request: a => ({ action: 'abort', phase: a.phase, bytes: a.bytes, mode: a.mode }),
})
