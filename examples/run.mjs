#!/usr/bin/env node
// `npm run example -- NAME`: runs one example's tap test; with no name or an unknown one, lists them.
import { readdirSync, existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const dir = path.dirname(fileURLToPath(import.meta.url))
const examples = readdirSync(dir, { withFileTypes: true })
  .filter(d => d.isDirectory() && existsSync(path.join(dir, d.name, `${d.name}.test.ts`)))
  .map(d => d.name).sort()
const name = process.argv[2]
if (!name || !examples.includes(name)) {
  if (name) process.stderr.write(`no example named ${JSON.stringify(name)}\n`)
  process.stderr.write(`usage: npm run example -- NAME, one of:\n${examples.map(e => `  ${e}`).join('\n')}\n(each has a README.md in examples/NAME)\n`)
  process.exit(name ? 1 : 2)
}
const tap = path.join(dir, '..', 'node_modules', '.bin', 'tap')
const r = spawnSync(tap, ['--disable-coverage', '--reporter=tap', path.join('examples', name)], { stdio: 'inherit', cwd: path.join(dir, '..') })
process.exit(r.status ?? 1)
