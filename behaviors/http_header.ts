import { checkMatch, defineBehavior, httpMatch, Type } from '../src/faults/behavior.js'

const edit = (side: string) => Type.Object({
  set: Type.Record(Type.String(), Type.String(), { default: {}, description: `fields to add or replace in the ${side} (every field of that name goes, one is added)` }),
  remove: Type.Array(Type.String(), { default: [], description: `names of fields to remove from the ${side} (any case)` }),
}, { additionalProperties: false, default: {}, description: `edits of the ${side}'s head` })

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

export default defineBehavior({
  type: 'http_header',
  summary: 'Add, replace or remove header fields of matching requests and their responses.',
  notes: 'HTTP proxies only. Untouched fields keep their bytes and order; set fields go at the end of the head. Framing ' +
    'is read from the original head, so do not edit Content-Length or Transfer-Encoding. Examples: ' +
    '`response: {set: {Connection: close}}`, `request: {set: {Host: other.example}}`, `request: {remove: [Authorization]}`. ' +
    '`stream` is ignored.',
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    request: edit('request'),
    response: edit('response'),
  }),
  validate(a) {
    for (const side of [a.request, a.response]) {
      for (const name of [...Object.keys(side.set), ...side.remove]) {
        if (!TOKEN.test(name)) return `${name}: not a header name`
      }
      for (const v of Object.values(side.set)) if (/[\r\n]/.test(v)) return 'header values cannot hold line breaks'
    }
    return checkMatch(a.match)
  },
  request: a => ({ action: 'rewrite_headers', request: a.request, response: a.response }),
})
