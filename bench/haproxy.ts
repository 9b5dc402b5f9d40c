// Finding HAProxy for the benchmark, installing Debian's package when it is missing and we may (root,
// apt-get present). Never throws: the caller skips the HAProxy column with the reason given.
import { execFileSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import path from 'node:path'

export type Found = { path: string; version: string } | { path: undefined; reason: string }

/** Looks in PATH and in the sbin folders, which a non-root PATH often lacks. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const d of dirs) {
    if (!d) continue
    const p = path.join(d, name)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch { /* not here */ }
  }
  return undefined
}

function version(bin: string): string {
  try {
    const out = execFileSync(bin, ['-v'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] })
    return /version\s+(\S+)/i.exec(out)?.[1] ?? 'unknown version'
  } catch {
    return 'unknown version'
  }
}

export function ensureHaproxy(progress: (msg: string) => void): Found {
  let bin = which('haproxy')
  if (!bin) {
    const apt = which('apt-get')
    if (process.getuid?.() !== 0) return { path: undefined, reason: 'haproxy is not installed (not root, so not installed here: apt-get install haproxy)' }
    if (!apt) return { path: undefined, reason: 'haproxy is not installed and apt-get is not available to install it' }
    progress('haproxy is not installed: apt-get install haproxy …')
    try {
      execFileSync('bash', ['-c', 'apt-get update -qq && apt-get install -y -qq haproxy'], {
        stdio: ['ignore', process.stderr, process.stderr], timeout: 600_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      })
    } catch (err) {
      return { path: undefined, reason: `installing haproxy failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` }
    }
    bin = which('haproxy')
    if (!bin) return { path: undefined, reason: 'haproxy is still not found after apt-get install haproxy' }
  }
  return { path: bin, version: version(bin) }
}
