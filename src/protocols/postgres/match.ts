// Query matching for PostgreSQL faults: `attributes.match` compiled once per attributes object.
import type { PgMatch, PgQuery } from '../../faults/behavior.js'
import { cidrList, inList } from '../cidr.js'
import { matchCompiler } from '../message-faults.js'

export type PgMatcher = (q: PgQuery) => boolean

/** `/regex/flags` or a bare regex source. */
function queryRegExp(source: string): RegExp {
  const m = /^\/(.*)\/([imsu]*)$/s.exec(source)
  try {
    return m ? new RegExp(m[1]!, m[2]) : new RegExp(source)
  } catch (err) {
    throw new TypeError(`match.query: ${(err as Error).message}`)
  }
}

function compile(spec: PgMatch | undefined): PgMatcher {
  const tests: PgMatcher[] = []
  if (spec?.query !== undefined) {
    const re = queryRegExp(spec.query)
    tests.push(q => re.test(q.sql))
  }
  if (spec?.statement !== undefined) {
    const words = new Set((typeof spec.statement === 'string' ? [spec.statement] : spec.statement).map(c => c.toUpperCase()))
    tests.push(q => words.has(q.statement))
  }
  if (spec?.database !== undefined) {
    const db = spec.database
    tests.push(q => q.database === db)
  }
  if (spec?.user !== undefined) {
    const user = spec.user
    tests.push(q => q.user === user)
  }
  if (spec?.client !== undefined) {
    const list = cidrList(spec.client)
    tests.push(q => inList(list, q.client.address))
  }
  return q => tests.every(t => t(q))
}

const compiler = matchCompiler<PgMatch, PgQuery>(compile)
/** A message for InvalidAttributesError, or undefined if the spec compiles. */
export const checkPgMatch = compiler.check
/** The matcher of a fault's attributes, compiled once. */
export const pgMatcherOf = compiler.of
