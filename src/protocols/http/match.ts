// Request matching for HTTP faults: `attributes.match` compiled once per attributes object.
import net from 'node:net'
import { cidrList } from '../cidr.js'
import { matchCompiler } from '../message-faults.js'
import type { HttpRequest } from '../../faults/behavior.js'

export interface MatchSpec {
  readonly method?: string | readonly string[]
  readonly path?: string
  readonly path_prefix?: string
  readonly path_regex?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly query?: Readonly<Record<string, string>>
  readonly client?: readonly string[]
}

export type Matcher = (req: HttpRequest) => boolean

const always: Matcher = () => true

/**
 * A glob on a path: `*` is any run of characters within one segment, `**` any run across segments
 * (`/a/**` also matches `/a`, `/**\/b` also matches `/b`), `?` one character other than `/`.
 */
export function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++
        const before = re.endsWith('/')
        const after = glob[i + 1] === '/' || i + 1 === glob.length
        if (before && after) {
          re = re.slice(0, -1)                        // `/**/` or a trailing `/**`: zero or more segments
          if (glob[i + 1] === '/') { re += '(?:/.*)?/'; i++ } else re += '(?:/.*)?'
        } else re += '.*'
      } else re += '[^/]*'
    } else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** `/regex/` or `/regex/i` → a RegExp; anything else is matched exactly. */
export function valueMatcher(v: string): (s: string) => boolean {
  const m = /^\/(.*)\/(i?)$/s.exec(v)
  if (m && v.length >= 2) {
    const re = new RegExp(m[1]!, m[2])
    return s => re.test(s)
  }
  return s => s === v
}

/** Compiles a match spec; throws TypeError (with a message naming the field) on a bad regex or CIDR. */
export function compileMatch(spec: MatchSpec | undefined): Matcher {
  if (!spec) return always
  const tests: Matcher[] = []
  if (spec.method !== undefined) {
    const methods = new Set((typeof spec.method === 'string' ? [spec.method] : spec.method).map(m => m.toUpperCase()))
    tests.push(r => methods.has(r.method.toUpperCase()))
  }
  if (spec.path !== undefined) {
    const re = globToRegExp(spec.path)
    tests.push(r => re.test(r.path))
  }
  if (spec.path_prefix !== undefined) {
    const p = spec.path_prefix
    tests.push(r => r.path.startsWith(p))
  }
  if (spec.path_regex !== undefined) {
    let re: RegExp
    try { re = new RegExp(spec.path_regex) } catch (err) { throw new TypeError(`match.path_regex: ${(err as Error).message}`) }
    tests.push(r => re.test(r.path))
  }
  for (const [field, get] of [['headers', (r: HttpRequest) => r.headers], ['query', (r: HttpRequest) => r.query]] as const) {
    const table = spec[field]
    if (!table) continue
    for (const [name, value] of Object.entries(table)) {
      let test: (s: string) => boolean
      try { test = valueMatcher(value) } catch (err) { throw new TypeError(`match.${field}.${name}: ${(err as Error).message}`) }
      const key = field === 'headers' ? name.toLowerCase() : name
      tests.push(r => {
        const v = get(r)[key]
        return v !== undefined && test(v)
      })
    }
  }
  if (spec.client !== undefined) {
    const bl = cidrList(spec.client)
    tests.push(r => {
      const family = net.isIP(r.client.address)
      return family !== 0 && bl.check(r.client.address, family === 4 ? 'ipv4' : 'ipv6')
    })
  }
  if (tests.length === 0) return always
  if (tests.length === 1) return tests[0]!
  return r => {
    for (const t of tests) if (!t(r)) return false
    return true
  }
}

const compiler = matchCompiler<MatchSpec, HttpRequest>(compileMatch)
/** A message for InvalidAttributesError, or undefined if the spec compiles. */
export const checkMatch = compiler.check
/** The matcher of a fault's attributes, compiled once (attributes are frozen and replaced on update). */
export const matcherOf: (attributes: Readonly<Record<string, unknown>>) => Matcher = compiler.of
