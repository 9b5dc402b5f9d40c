// Command matching for Redis faults: `attributes.match` compiled once per attributes object.
import type { RedisCommand, RedisMatch } from '../../faults/behavior.js'
import { cidrList, inList } from '../cidr.js'
import { matchCompiler } from '../message-faults.js'

export type RedisMatcher = (cmd: RedisCommand) => boolean

/** A Redis glob (as KEYS and SCAN MATCH take): `*` any run, `?` one character, `[abc]`, `[^a]`, `[a-z]`, `\x` literal. */
export function redisGlob(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') re += '[\\s\\S]*'
    else if (c === '?') re += '[\\s\\S]'
    else if (c === '\\' && i + 1 < glob.length) re += escape(glob[++i]!)
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2)
      if (close < 0) { re += '\\['; continue }
      let body = glob.slice(i + 1, close)
      const negate = body.startsWith('^')
      if (negate) body = body.slice(1)
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`
      i = close
    } else re += escape(c)
  }
  return new RegExp(`^${re}$`)
}

const escape = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')

function compile(spec: RedisMatch | undefined): RedisMatcher {
  const tests: RedisMatcher[] = []
  if (spec?.command !== undefined) {
    const names = new Set((typeof spec.command === 'string' ? [spec.command] : spec.command).map(c => c.toUpperCase()))
    tests.push(c => names.has(c.name))
  }
  if (spec?.key !== undefined) {
    const re = redisGlob(spec.key)
    tests.push(c => c.key !== undefined && re.test(c.key))
  }
  if (spec?.db !== undefined) {
    const db = spec.db
    tests.push(c => c.db === db)
  }
  if (spec?.client !== undefined) {
    const list = cidrList(spec.client)
    tests.push(c => inList(list, c.client.address))
  }
  return c => tests.every(t => t(c))
}

const compiler = matchCompiler<RedisMatch, RedisCommand>(compile)
/** A message for InvalidAttributesError, or undefined if the spec compiles. */
export const checkRedisMatch = compiler.check
/** The matcher of a fault's attributes, compiled once. */
export const redisMatcherOf = compiler.of
