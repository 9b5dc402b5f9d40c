import { checkMatch, defineBehavior, httpMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'http_status',
  summary: 'Answer matching requests with a status, headers and body, without forwarding them.',
  notes: 'HTTP proxies only. The request and its body are read and dropped; the upstream never sees them. The answer ' +
    'is sent in its turn among pipelined responses, with Content-Length, an `X-Coquin-Fault` header naming the fault, ' +
    'and `Connection: close` (the link then closes) when the request asked to close, was HTTP/1.0 without keep-alive, ' +
    'or had `Expect: 100-continue` (answered before its body). toxicity is the share of matching requests answered; ' +
    'after/count count matching requests. `stream` is ignored.',
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    status: Type.Integer({ minimum: 200, maximum: 599, default: 503, description: 'status code of the answer' }),
    headers: Type.Record(Type.String(), Type.String(), { default: {}, description: 'header fields of the answer (Content-Length and Connection are coquin\'s)' }),
    body: Type.String({ default: '', description: 'body of the answer (none for 204 and 304, nor for HEAD requests)' }),
  }),
  validate: a => checkMatch(a.match),
  request: a => ({ action: 'respond', status: a.status, headers: a.headers, body: a.body }),
})
