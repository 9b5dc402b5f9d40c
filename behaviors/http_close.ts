import { MAX_COUNT, checkMatch, defineBehavior, httpMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'http_close',
  summary: 'Close a keep-alive connection right after a response: every N-th one (abruptly), or after N requests (announced).',
  notes: 'HTTP proxies only. `every` N: after each N-th response on a link (1 = each) the connection is closed although ' +
    'the response kept keep-alive: the client finds out when it reuses the connection (the idle-reset-on-reuse bug, made ' +
    'deterministic). `after_requests` N: the first matching response from the N-th request on gets `Connection: close` ' +
    'and the connection closes after it, as a server with a per-connection request limit does (clients should cope). ' +
    'With neither set, every response closes its connection. Requests are counted per link from 1, whether they match ' +
    'or not; toxicity and after/count apply to the closes. `mode: rst_on_reuse` is a load balancer that forgot an idle ' +
    'flow: after the response the connection looks alive (nothing is sent to the client, what the upstream sends is ' +
    'dropped), and the next bytes the client sends on it (its next request, or its FIN) are answered with a reset on ' +
    'both sides, never forwarded. `stream` is ignored.',
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    every: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'close after every N-th response on a link, unannounced; 0 = unset' }),
    after_requests: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'close after the N-th request\'s response, with Connection: close; 0 = unset' }),
    mode: Type.Union([Type.Literal('fin'), Type.Literal('rst'), Type.Literal('rst_on_reuse')], {
      default: 'fin',
      description: 'fin: close both sides; rst: reset them; rst_on_reuse: tell no one, then reset both when the client sends its next request on the connection',
    }),
  }),
  validate: a => checkMatch(a.match),
  request(a, req) {
    const n = req.index + 1
    if (a.after_requests > 0 && n >= a.after_requests) return { action: 'close_after_response', mode: a.mode, announce: true }
    const every = a.every > 0 ? a.every : a.after_requests > 0 ? 0 : 1
    if (every > 0 && n % every === 0) return { action: 'close_after_response', mode: a.mode }
    return null
  },
})
