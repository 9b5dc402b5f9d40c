// Real servers for the protocol tests and examples: redis-server and PostgreSQL from Debian, each started
// on a free loopback port in a temp dir, stopped (and its dir removed) at teardown. `redisSkip` and
// `postgresSkip` are tap's skip reasons when the package is missing (.ci/run installs both).
import { execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants, readdirSync } from 'node:fs'
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

type T = { teardown(fn: () => unknown): void }

/** The first executable called `name` in dirs, then on PATH. */
export function findExecutable(name: string, dirs: readonly string[] = []): string | undefined {
  for (const dir of [...dirs, ...(process.env.PATH ?? '').split(delimiter)]) {
    if (!dir) continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch { /* not here */ }
  }
  return undefined
}

/** A port free on 127.0.0.1 now (for servers that cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

function bounded<V>(p: Promise<V>, ms: number, what: string): Promise<V> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms) }),
  ])
}

// ── Redis ─────────────────────────────────────────────────────────────────────────────────────────

export const REDIS_SERVER = findExecutable('redis-server')
export const redisSkip: string | false = REDIS_SERVER ? false : 'redis-server not installed: apt-get install redis-server'

/** A real redis-server on a free loopback port, in a temp dir, no persistence; stopped at teardown. */
export async function redisServer(t: T, extra: readonly string[] = []): Promise<{ port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'coquin-redis-'))
  const port = await freePort()
  const child = spawn(REDIS_SERVER!, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--logfile', '', ...extra,
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await bounded(exited, 5000, 'redis-server to exit')
    await rm(dir, { recursive: true, force: true })
  })
  let output = ''
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk
      if (output.includes('Ready to accept connections')) resolve()
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('error', reject)
    child.on('exit', code => reject(new Error(`redis-server exited (${code}):\n${output}`)))
  })
  await bounded(ready, 10_000, 'redis-server to start')
  return { port }
}

// ── PostgreSQL ────────────────────────────────────────────────────────────────────────────────────

const run = promisify(execFile)
const isRoot = process.getuid?.() === 0

/** Debian keeps PostgreSQL's programs in /usr/lib/postgresql/<version>/bin: newest first, then PATH. */
export function pgBinDirs(): string[] {
  try {
    return readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)).map(v => `/usr/lib/postgresql/${v}/bin`)
  } catch {
    return []
  }
}
const INITDB = findExecutable('initdb', pgBinDirs())
const PG_CTL = INITDB && findExecutable('pg_ctl', [join(INITDB, '..')])
const RUNUSER = findExecutable('runuser', ['/usr/sbin', '/sbin'])
/** PostgreSQL refuses to run as root: as root it is run as the `postgres` user the Debian package creates. */
const POSTGRES_USER = isRoot ? spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }) : undefined

export const postgresSkip: string | false =
  !INITDB || !PG_CTL ? 'PostgreSQL not installed: apt-get install postgresql'
  : isRoot && (POSTGRES_USER?.status !== 0 || !RUNUSER) ? 'running as root without a postgres user and runuser to start PostgreSQL as'
  : false

/** Runs a PostgreSQL program, as the postgres user when we are root. */
function pgRun(bin: string, args: string[]) {
  return isRoot ? run(RUNUSER!, ['-u', 'postgres', '--', bin, ...args], { timeout: 60_000 }) : run(bin, args, { timeout: 60_000 })
}

/**
 * A real PostgreSQL in a temp dir, on a free loopback port, its socket in that dir; stopped at teardown.
 * Trust authentication for user `postgres`; `auth: 'scram'` sets password `secret` and requires SCRAM over TCP.
 */
export async function postgresServer(t: T, opts: { auth?: 'trust' | 'scram' } = {}): Promise<{ port: number; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'coquin-pg-'))
  const data = join(dir, 'data')
  if (isRoot) {
    const ids = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim())
    await chown(dir, ids('-u'), ids('-g'))
  }
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const initArgs = ['-D', data, '-U', 'postgres', '--no-sync', '--no-locale', '-E', 'UTF8']
  if (opts.auth === 'scram') {
    const pw = join(dir, 'pw')
    await writeFile(pw, 'secret\n', { mode: 0o644 })
    initArgs.push('--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pw}`)
  } else initArgs.push('-A', 'trust')
  await pgRun(INITDB!, initArgs)
  const port = await freePort()
  try {
    await pgRun(PG_CTL!, ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', 'start',
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`])
  } catch (err) {
    const log = await readFile(join(dir, 'log'), 'utf8').catch(() => '')
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${log}`)
  }
  t.teardown(() => pgRun(PG_CTL!, ['-D', data, '-m', 'immediate', 'stop']))
  return { port, dir }
}
