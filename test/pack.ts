// The npm package: what `npm pack` puts in it (what a user needs, no tests or benchmarks), and that the
// installed tarball's `coquin` runs. The install needs the npm registry for dependencies not in npm's
// cache: without it that part skips, saying so.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const built = existsSync(path.join(root, 'dist/src/cli/main.js'))
const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 120_000 })

t.test('npm pack: the built code, configs, README, LICENSE and CHANGELOG; no tests, benchmarks or examples', { skip: !built && 'build first' }, async t => {
  const r = npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root)
  t.equal(r.status, 0, r.stderr)
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map(f => f.path)
  for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/client/index.js', 'dist/behaviors/index.js', 'dist/src/ui/static/app.js', 'configs/default.yaml', 'configs/coquin.schema.json']) {
    t.ok(files.includes(f), `has ${f}`)
  }
  t.same(files.filter(f => /^(test|bench|examples|src|behaviors|deploy)\/|^dist\/(test|bench|examples)\//.test(f)), [], 'nothing else')
})

t.test('the installed tarball: `coquin --version` and `coquin types` run from node_modules/.bin', { skip: !built && 'build first', timeout: 240_000 }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const packed = npm(['pack', '--ignore-scripts', '--pack-destination', dir], root)
  t.equal(packed.status, 0, packed.stderr)
  const tarball = path.join(dir, packed.stdout.trim().split('\n').at(-1)!)
  const app = path.join(dir, 'app')
  spawnSync('mkdir', [app])
  writeFileSync(path.join(app, 'package.json'), '{"name":"uses-coquin","version":"1.0.0","private":true}\n')
  const installed = npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app)
  if (installed.status !== 0) {
    await t.test('coquin from the installed tarball', { skip: `npm install failed (no registry?): ${installed.stderr.slice(0, 200)}` }, async () => {})
    return
  }
  const bin = path.join(app, 'node_modules/.bin/coquin')
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  t.equal(version.stdout.trim(), JSON.parse(spawnSync('node', ['-p', 'JSON.stringify(require("./package.json").version)'], { cwd: root, encoding: 'utf8' }).stdout))
  const types = spawnSync(bin, ['types'], { encoding: 'utf8' })
  t.equal(types.status, 0, types.stderr)
  t.match(types.stdout, /^TYPE +ATTRIBUTES/)
  const lib = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('coquin'); const c = await import('coquin/client'); console.log(typeof m.startCoquin, typeof c.Coquin)"], { cwd: app, encoding: 'utf8' })
  t.equal(lib.stdout.trim(), 'function function', `the package's exports load: ${lib.stderr}`)
})
