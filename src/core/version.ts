import { readFileSync } from 'node:fs'

/** coquin's version, from the package.json above this file (in src/core/ or in dist/src/core/). */
export const version: string = (() => {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'coquin' && pkg.version) return pkg.version
    } catch { /* try the next */ }
  }
  return '0.0.0'
})()
