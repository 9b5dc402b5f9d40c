import { checkRedisMatch, defineBehavior, redisMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'redis_error',
  summary: 'Answer matching Redis commands with an error reply, without forwarding them.',
  notes: 'Redis proxies only. The command never reaches the server; the client gets `-<error>` in the command\'s turn, ' +
    'so later pipelined replies stay paired. The first word is the error code clients key on: `LOADING` (a restarting ' +
    'server), `READONLY You can\'t write against a read only replica.` (after a failover), `MOVED 3999 127.0.0.1:6381`, ' +
    '`TRYAGAIN`, `CLUSTERDOWN`, `BUSY`, `OOM`, `NOAUTH`, `MASTERDOWN`. Inside MULTI the error replaces `+QUEUED` (the ' +
    'server never queued the command). toxicity is the share of matching commands answered; after/count count matching ' +
    'commands. Not applied once a link\'s replies are no longer paired (after SUBSCRIBE, MONITOR, CLIENT REPLY OFF|SKIP). ' +
    '`stream` is ignored.',
  protocols: ['redis'],
  attributes: Type.Object({
    match: redisMatch,
    error: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[^\\r\\n]+$', default: 'LOADING Redis is loading the dataset in memory',
      description: 'the error reply, without its `-`: the first word is its code' }),
  }),
  validate: a => checkRedisMatch(a.match),
  command: a => ({ action: 'error', message: a.error }),
})
