import t from 'tap'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { builtins } from '../behaviors/index.js'
import { behaviorDocs, spliceDocs } from '../src/faults/docs.js'
import { codes } from '../src/core/errors.js'

const readmeUrl = new URL('../README.md', import.meta.url)

t.test('the README\'s fault reference is generated from behaviors/ (UPDATE_DOCS=1 rewrites it)', async t => {
  const readme = readFileSync(readmeUrl, 'utf8')
  const wanted = spliceDocs(readme, behaviorDocs(builtins))
  if (process.env.UPDATE_DOCS === '1' && wanted !== readme) writeFileSync(readmeUrl, wanted)
  t.equal(readme, wanted, 'run `npm run docs` after changing a behavior')
})

t.test('behaviors/index.ts lists every file in behaviors/, and each file is named after its type', async t => {
  const files = readdirSync(new URL('../behaviors/', import.meta.url))
    .filter(f => f.endsWith('.ts') && f !== 'index.ts').map(f => f.slice(0, -3)).sort()
  t.same(builtins.map(b => b.type).sort(), files)
  for (const b of builtins) {
    const mod = await import(`../behaviors/${b.type}.js`) as { default: unknown }
    t.equal(mod.default, b, `${b.type}.ts exports it`)
  }
})

t.test('every error code has a row in the README\'s Errors table', async t => {
  const readme = readFileSync(readmeUrl, 'utf8')
  for (const code of codes.keys()) t.match(readme, `| \`${code}\` |`, code)
})
