// The README's fault reference, generated from the behaviors' own definitions (the single source),
// so that the docs cannot drift: test/docs.ts checks the README holds exactly this text.
import type { TSchema } from '@sinclair/typebox'
import type { Behavior } from './behavior.js'

function typeOf(s: TSchema): string {
  if (s.anyOf) return (s.anyOf as TSchema[]).map(x => (x.const !== undefined ? `\`${String(x.const)}\`` : typeOf(x))).join(' \\| ')
  if (s.type === 'array') return `list of ${typeOf(s.items as TSchema)}`
  if (s.type === 'object') return 'object'
  return String(s.type ?? 'any')
}

function defaultOf(s: TSchema): string {
  if (s.default === undefined) return '—'
  return `\`${JSON.stringify(s.default)}\``
}

export function behaviorDocs(behaviors: readonly Behavior[]): string {
  const out: string[] = []
  for (const b of behaviors) {
    const protocols = b.protocols ? ` *(${b.protocols.join(', ')} only)*` : ''
    out.push(`### \`${b.type}\`${protocols}`, '', b.summary, '')
    if (b.notes) out.push(b.notes, '')
    const props = Object.entries(b.attributes.properties as Record<string, TSchema>)
    if (props.length === 0) out.push('No attributes of its own.', '')
    else {
      out.push('| attribute | type | default | meaning |', '| --- | --- | --- | --- |')
      for (const [name, s] of props) {
        const range = s.minimum !== undefined && s.maximum !== undefined && s.maximum < 2 ** 31 - 1 ? ` (${s.minimum}–${s.maximum})` : ''
        out.push(`| \`${name}\` | ${typeOf(s)}${range} | ${defaultOf(s)} | ${String(s.description ?? '').replaceAll('|', '\\|')} |`)
      }
      out.push('')
    }
    const kind = b.connect ? 'at connect time' : b.stage ? 'on the data path' : 'per HTTP request'
    out.push(`Acts ${kind}. Example: \`coquin toxic add PROXY -t ${b.type}${exampleArgs(b)}\``, '')
  }
  return out.join('\n')
}

function exampleArgs(b: Behavior): string {
  const props = Object.entries(b.attributes.properties as Record<string, TSchema>)
    .filter(([, s]) => typeof s.default === 'number' || typeof s.default === 'string').slice(0, 2)
  return props.map(([k, s]) => ` -a ${k}=${String(s.default)}`).join('')
}

export const BEGIN = '<!-- behaviors:begin (generated from behaviors/: npm run docs) -->'
export const END = '<!-- behaviors:end -->'

/** The README with its generated section replaced. */
export function spliceDocs(readme: string, docs: string): string {
  const a = readme.indexOf(BEGIN)
  const b = readme.indexOf(END)
  if (a < 0 || b < a) throw new Error('README has no behaviors section markers')
  return `${readme.slice(0, a + BEGIN.length)}\n\n${docs}\n${readme.slice(b)}`
}
