import { checkPgMatch, defineBehavior, jittered, ms, pgMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'pg_delay',
  summary: 'Delay matching PostgreSQL queries before forwarding them.',
  notes: 'PostgreSQL proxies only. The query (a simple Query, or the Execute of a prepared statement), and every message ' +
    'the client sends after it, waits before going to the server: a slow query as the client sees it. jitter is the ' +
    'half-width of a uniform spread, or the standard deviation of a normal one. `stream` is ignored.',
  protocols: ['postgres'],
  attributes: Type.Object({
    match: pgMatch,
    delay: ms('delay added'),
    jitter: ms('spread around delay'),
    distribution: Type.Union([Type.Literal('uniform'), Type.Literal('normal')], { default: 'uniform', description: 'shape of the jitter' }),
  }),
  validate: a => checkPgMatch(a.match),
  query: (a, _q, { random }) => ({ action: 'delay', ms: jittered(a.delay, a.jitter, a.distribution, random) }),
})
