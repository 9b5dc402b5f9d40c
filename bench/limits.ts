// Open-file limits for the idle-links scenario. A proxy holds two descriptors per link (client and
// upstream), so 10,000 links need a limit above 20,000 in the proxy's process. Node raises its own soft
// limit to the hard limit at startup but cannot call setrlimit for more: when the limit is too low and a
// shell can raise it (root with CAP_SYS_RESOURCE), the bench re-runs itself through
// `bash -c 'ulimit -n N; exec …'` (children inherit the limit); when it cannot, the caller opens fewer
// links and says so in the report.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Descriptors a proxy process uses besides its links: stdio, IPC, epoll, listeners, a stats socket. */
export const FD_MARGIN = 128
const RESPAWNED = 'COQUIN_BENCH_ULIMIT_RAISED'

export interface FdLimit { soft: number; hard: number }

export function fdLimit(): FdLimit | undefined {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (!m) return undefined
    const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s))
    return { soft: n(m[1]!), hard: n(m[2]!) }
  } catch {
    return undefined
  }
}

/** Whether `ulimit -n n` succeeds in a shell here (it may raise the hard limit when privileged). */
function canSet(n: number): boolean {
  try {
    execFileSync('bash', ['-c', 'ulimit -n "$1"', 'bash', String(n)], { stdio: 'ignore', timeout: 5_000 })
    return true
  } catch {
    return false
  }
}

/**
 * If the soft limit is below `needed` and a shell could raise it (to `needed`, or at least to the hard
 * limit), runs this same command again under that limit and resolves with its exit code; otherwise
 * resolves undefined and the caller goes on as it is.
 */
export async function respawnWithLimit(needed: number): Promise<number | undefined> {
  const lim = fdLimit()
  if (!lim || lim.soft >= needed || process.env[RESPAWNED] || !canRespawn(lim, needed)) return undefined
  const script = 'ulimit -n "$1" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"; shift; exec "$@"'
  const child = spawn('bash', ['-c', script, 'bash', String(needed), process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit', env: { ...process.env, [RESPAWNED]: '1' },
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig))
  return new Promise(resolve => {
    child.on('error', () => resolve(1))
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

function canRespawn(lim: FdLimit, needed: number): boolean {
  return lim.hard >= needed || canSet(needed) || lim.soft < lim.hard
}
