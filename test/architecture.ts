// The layout's boundaries, read from the import graph of src/ and behaviors/ (runtime imports only:
// `import type` is erased by the compiler and cannot make a cycle at run time).
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

function filesUnder(dir: string): string[] {
  return readdirSync(path.join(root, dir)).flatMap(name => {
    const rel = path.posix.join(dir, name)
    return statSync(path.join(root, rel)).isDirectory() ? filesUnder(rel) : rel.endsWith('.ts') ? [rel] : []
  })
}

/** The repo-relative .ts files that `file` imports at run time. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8')
  const specs: string[] = []
  // `import x from`, `import { a, type b } from`, `export … from`, `import '…'`; not `import type` / `export type`.
  const re = /^(?:import|export)\s+(?!type\s)(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm
  for (const m of text.matchAll(re)) {
    const clause = m[0]
    const named = /\{([^}]*)\}/.exec(clause)
    const onlyTypes = named && !/^(?:import|export)\s+[\w*]/.test(clause.replace(/^(import|export)\s+\{/, '$1 {'))
      && named[1]!.split(',').map(s => s.trim()).filter(Boolean).every(s => s.startsWith('type '))
    if (onlyTypes) continue
    specs.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]!)).replace(/\.js$/, '.ts'))
  }
  return specs
}

const files = [...filesUnder('src'), ...filesUnder('behaviors')]
const graph = new Map(files.map(f => [f, runtimeImports(f)]))
const imports = (f: string) => graph.get(f) ?? []
const inside = (f: string, dir: string) => f.startsWith(dir + '/')

t.test('every relative import resolves to a file of the tree', async t => {
  const missing = files.flatMap(f => imports(f).filter(i => (i.startsWith('src/') || i.startsWith('behaviors/')) && !graph.has(i)).map(i => `${f} → ${i}`))
  t.same(missing, [])
})

t.test('no runtime import cycle in src/ and behaviors/', async t => {
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const visit = (f: string, trail: string[]): void => {
    if (state.get(f) === 'done') return
    if (state.get(f) === 'open') { cycles.push([...trail.slice(trail.indexOf(f)), f].join(' → ')); return }
    state.set(f, 'open')
    for (const i of imports(f)) if (graph.has(i)) visit(i, [...trail, f])
    state.set(f, 'done')
  }
  for (const f of files) visit(f, [])
  t.same(cycles, [], 'a cycle makes module order matter: move the shared piece down a layer')
})

t.test('the published client imports nothing outside src/client/', async t => {
  const out = files.filter(f => inside(f, 'src/client')).flatMap(f => imports(f).filter(i => !inside(i, 'src/client')).map(i => `${f} → ${i}`))
  t.same(out, [])
})

for (const dir of ['src/core', 'src/spec']) {
  t.test(`${dir}/ imports nothing else of src/`, async t => {
    const out = files.filter(f => inside(f, dir)).flatMap(f => imports(f).filter(i => !inside(i, dir)).map(i => `${f} → ${i}`))
    t.same(out, [])
  })
}

t.test('behaviors import only the behavior SDK (src/faults/behavior.ts)', async t => {
  const out = files.filter(f => inside(f, 'behaviors') && f !== 'behaviors/index.ts')
    .flatMap(f => imports(f).filter(i => i !== 'src/faults/behavior.ts').map(i => `${f} → ${i}`))
  t.same(out, [])
})

t.test('src/ never names a behavior: only src/index.ts and the server wire in behaviors/index.ts', async t => {
  const out = files.filter(f => inside(f, 'src')).flatMap(f => imports(f).filter(i => inside(i, 'behaviors')).map(i => `${f} → ${i}`))
  t.same(out.map(s => s.split(' → ')[0]).sort(), ['src/index.ts', 'src/server.ts'])
})

t.test('no function in src/ is longer than 150 lines: one that does several jobs is split', async t => {
  const ts = (await import('typescript')).default
  const MAX_LINES = 150
  const long: string[] = []
  for (const file of files.filter(f => f.startsWith('src/'))) {
    const source = ts.createSourceFile(file, readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.Latest, true)
    const visit = (node: import('typescript').Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line
        const last = source.getLineAndCharacterOfPosition(node.getEnd()).line
        const name = (node as { name?: import('typescript').Node }).name?.getText(source) ?? '(anonymous)'
        if (last - first + 1 > MAX_LINES) long.push(`${file}:${first + 1} ${name}: ${last - first + 1} lines`)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  t.same(long, [], `functions over ${MAX_LINES} lines`)
})
