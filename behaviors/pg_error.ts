import { checkPgMatch, defineBehavior, pgMatch, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'pg_error',
  summary: 'Answer matching PostgreSQL queries with an error (a SQLSTATE), without forwarding them.',
  notes: 'PostgreSQL proxies only. A simple query is answered with ErrorResponse and ReadyForQuery in its turn; an ' +
    'Execute (extended protocol, matched on its prepared statement\'s SQL) is dropped with what follows it up to Sync, ' +
    'and the error arrives before the server\'s ReadyForQuery for that Sync, as a server\'s would. Inside a transaction ' +
    'the client is then told the transaction failed (`E`), later statements get 25P02 until it ends, and a COMMIT is ' +
    'sent as ROLLBACK. `FATAL` closes the ' +
    'connection after the error, as a server shutting down does. Codes clients retry on: `40001` serialization_failure, ' +
    '`40P01` deadlock_detected; failover: `57P01` admin_shutdown (with FATAL), `25006` read_only_sql_transaction, ' +
    '`57P03` cannot_connect_now. toxicity, after and count count matching queries. `stream` is ignored.',
  protocols: ['postgres'],
  attributes: Type.Object({
    match: pgMatch,
    code: Type.String({ pattern: '^[0-9A-Z]{5}$', default: '40001', description: 'the SQLSTATE (five digits or capitals)' }),
    message: Type.String({ minLength: 1, maxLength: 1024, default: 'could not serialize access due to concurrent update', description: 'the error\'s message' }),
    severity: Type.Union([Type.Literal('ERROR'), Type.Literal('FATAL')], { default: 'ERROR', description: 'ERROR: the connection carries on; FATAL: it closes after the error' }),
  }),
  validate: a => checkPgMatch(a.match),
  query: a => ({ action: 'error', code: a.code, message: a.message, severity: a.severity }),
})
