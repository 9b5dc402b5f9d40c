import { checkRedisMatch, defineBehavior, redisMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'redis_abort',
  summary: 'When a matching Redis command arrives, reset or close the connection before forwarding it, or go silent.',
  notes: 'Redis proxies only. The command is not forwarded; what went before it is. `rst` resets both sides ' +
    '(ECONNRESET), `fin` closes both (the client sees the connection end with the command unanswered), `hang` forwards ' +
    'nothing more either way and answers nothing, leaving the connection open: a stuck server, which only the client\'s ' +
    'own command timeout ends. `stream` is ignored.',
  protocols: ['redis'],
  attributes: Type.Object({
    match: redisMatch,
    mode: Type.Union([Type.Literal('rst'), Type.Literal('fin'), Type.Literal('hang')], { default: 'rst', description: 'rst: reset; fin: close; hang: silence, connection left open' }),
  }),
  validate: a => checkRedisMatch(a.match),
  command: a => ({ action: 'abort', mode: a.mode }),
})
