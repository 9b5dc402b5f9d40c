import { checkRedisMatch, defineBehavior, jittered, ms, redisMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'redis_delay',
  summary: 'Delay matching Redis commands before forwarding them, or their replies.',
  notes: 'Redis proxies only. `command`: the command (and every command pipelined after it) waits before going to the ' +
    'server. `reply`: the command goes at once and its reply (and every reply after it) waits before reaching the client. ' +
    'jitter is the half-width of a uniform spread, or the standard deviation of a normal one. `reply` is not applied once ' +
    'a link\'s replies are no longer paired (after SUBSCRIBE, MONITOR, CLIENT REPLY OFF|SKIP). `stream` is ignored.',
  protocols: ['redis'],
  attributes: Type.Object({
    match: redisMatch,
    delay: ms('delay added'),
    jitter: ms('spread around delay'),
    distribution: Type.Union([Type.Literal('uniform'), Type.Literal('normal')], { default: 'uniform', description: 'shape of the jitter' }),
    phase: Type.Union([Type.Literal('command'), Type.Literal('reply')], { default: 'command', description: 'what waits: the command, or its reply' }),
  }),
  validate: a => checkRedisMatch(a.match),
  command: (a, _cmd, { random }) => ({ action: 'delay', phase: a.phase, ms: jittered(a.delay, a.jitter, a.distribution, random) }),
})
