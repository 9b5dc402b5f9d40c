import { checkPgMatch, defineBehavior, pgMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'pg_abort',
  summary: 'When a matching PostgreSQL query arrives, reset or close the connection before forwarding it, or go silent.',
  notes: 'PostgreSQL proxies only. The query is not forwarded; what went before it is. `rst` resets both sides ' +
    '(ECONNRESET), `fin` closes both (the client sees the connection end unexpectedly), `hang` forwards nothing more ' +
    'either way and answers nothing, leaving the connection open: a stuck server, which only the client\'s own ' +
    'statement or socket timeout ends. `stream` is ignored.',
  protocols: ['postgres'],
  attributes: Type.Object({
    match: pgMatch,
    mode: Type.Union([Type.Literal('rst'), Type.Literal('fin'), Type.Literal('hang')], { default: 'rst', description: 'rst: reset; fin: close; hang: silence, connection left open' }),
  }),
  validate: a => checkPgMatch(a.match),
  query: a => ({ action: 'abort', mode: a.mode }),
})
