// The context every CLI command group gets: where output goes (ClientIO, replaceable by tests), the
// client for the server the command names (--control, COQUIN_URL/TOXIPROXY_URL, --token), and `action`,
// which turns any failure into `coquin: <message>` on stderr and exit code 1.
import type { Command } from 'commander'
import { Coquin, CoquinApiError, CoquinUnreachableError } from '../client/index.js'

export const DEFAULT_URL = 'http://127.0.0.1:8474'

interface ConnOpts { control?: string; token?: string; json?: boolean }

export class UsageError extends Error {}

/** The option value given on this command or on any command above it (`coquin --control U list`). */
export function inherited(cmd: Command, key: keyof ConnOpts): string | boolean | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const v = c.getOptionValue(key) as string | boolean | undefined
    if (v !== undefined) return v
  }
  return undefined
}

export function withConn(cmd: Command, json = true): Command {
  if (json) cmd.option('--json', 'print the server\'s JSON, for scripts')
  return cmd
    .option('--control <url>', `control API URL (env COQUIN_URL or TOXIPROXY_URL, default ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token for a server started with --token (env COQUIN_TOKEN)')
}

/** Where the commands read the environment and write their output: the process's, unless a test says otherwise. */
export interface ClientIO {
  stdout: { write(s: string): unknown }
  stderr: { write(s: string): unknown }
  env: Readonly<Record<string, string | undefined>>
  /** Called once when a command fails, after its message is written (default: process.exitCode = code). */
  setExitCode(code: number): void
  /** Calls fn on the first Ctrl-C (SIGINT) until the returned function is called (`scenario run`). */
  onInterrupt(fn: () => void): () => void
}

export interface CliContext {
  readonly io: ClientIO
  out(s: string): void
  printJSON(v: unknown): void
  /** The client for the server this command names, and whether --json was given. */
  clientFor(cmd: Command): { client: Coquin; json: boolean }
  /** Wraps a command's action: a failure becomes `coquin: <message>` on stderr and exit code 1. */
  action<A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<void>): (...args: unknown[]) => Promise<void>
}

export function cliContext(ioOverrides: Partial<ClientIO> = {}): CliContext {
  const io: ClientIO = {
    stdout: process.stdout, stderr: process.stderr, env: process.env,
    setExitCode: code => { process.exitCode = code },
    onInterrupt: fn => { process.once('SIGINT', fn); return () => { process.off('SIGINT', fn) } },
    ...ioOverrides,
  }
  const out = (s: string) => { io.stdout.write(s) }
  const printJSON = (v: unknown) => out(JSON.stringify(v, null, 2) + '\n')

  const clientFor = (cmd: Command): { client: Coquin; json: boolean } => {
    const url = (inherited(cmd, 'control') as string | undefined) ?? io.env.COQUIN_URL ?? io.env.TOXIPROXY_URL ?? DEFAULT_URL
    const token = (inherited(cmd, 'token') as string | undefined) ?? io.env.COQUIN_TOKEN
    let client: Coquin
    try {
      client = new Coquin(url, token ? { token } : {})
    } catch (err) {
      throw new UsageError(`--control: ${(err as Error).message}`)
    }
    return { client, json: inherited(cmd, 'json') === true }
  }

  /** Runs an action, turning any failure into `coquin: <message>` on stderr and exit code 1. */
  const action = <A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<void>) => async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command
    try {
      await fn(cmd, ...(args.slice(0, -2) as A))
    } catch (err) {
      const known = err instanceof CoquinApiError || err instanceof CoquinUnreachableError || err instanceof UsageError
      io.stderr.write(`coquin: ${known ? (err as Error).message : String((err as Error)?.stack ?? err)}\n`)
      io.setExitCode(1)
    }
  }

  return { io, out, printJSON, clientFor, action }
}
