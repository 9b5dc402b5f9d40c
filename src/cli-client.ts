// The CLI commands that drive a running coquin (or Toxiproxy) through its control API, named as in
// toxiproxy-cli: list, inspect, create, toggle, delete, toxic add|update|remove, reset, plus types.
// Tables for people, --json for scripts (the server's JSON as it came). Errors go to stderr as
// `coquin: <message>` with exit code 1 (process.exitCode: nothing here calls process.exit). Output,
// environment and exit code go through ClientIO, so tests can run the commands in-process.
import { Command, InvalidArgumentError, Option } from 'commander'
import { Coquin, CoquinApiError, CoquinUnreachableError, type Fault, type FaultStream, type ProxyInfo } from './client.js'
import { formatPairs, formatTable } from './table.js'

const DEFAULT_URL = 'http://127.0.0.1:8474'

interface ConnOpts { control?: string; token?: string; json?: boolean }

/** A `-a key=value` value: a number if it reads as one, true/false as booleans, else the string. */
export function parseValue(v: string): unknown {
  if (v === 'true') return true
  if (v === 'false') return false
  if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  return v
}

/** Collects repeated `-a key=value` into an attributes object. */
function attribute(kv: string, acc: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = kv.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError('expected key=value.')
  return { ...acc, [kv.slice(0, eq).trim()]: parseValue(kv.slice(eq + 1).trim()) }
}

function toxicity(v: string): number {
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1.')
  return n
}

class UsageError extends Error {}

/** The option value given on this command or on any command above it (`coquin --control U list`). */
function inherited(cmd: Command, key: keyof ConnOpts): string | boolean | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const v = c.getOptionValue(key) as string | boolean | undefined
    if (v !== undefined) return v
  }
  return undefined
}

function withConn(cmd: Command, json = true): Command {
  if (json) cmd.option('--json', 'print the server\'s JSON, for scripts')
  return cmd
    .option('--control <url>', `control API URL (env COQUIN_URL, default ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token for a server started with --token (env COQUIN_TOKEN)')
}

function formatValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v)
}

function formatAttributes(attrs: Record<string, unknown> | undefined): string {
  return Object.entries(attrs ?? {}).map(([k, v]) => `${k}=${formatValue(v)}`).join(' ')
}

function toxicsTable(toxics: readonly Fault[]): string {
  return formatTable(['NAME', 'TYPE', 'STREAM', 'TOXICITY', 'ATTRIBUTES'],
    toxics.map(t => [t.name, t.type, t.stream, String(t.toxicity), formatAttributes(t.attributes)]))
}

function streamOf(o: { upstream?: boolean; downstream?: boolean; both?: boolean; stream?: string }): FaultStream | undefined {
  const picked = (['upstream', 'downstream', 'both'] as const).filter(s => o[s])
  if (o.stream !== undefined) {
    if (!['upstream', 'downstream', 'both'].includes(o.stream)) throw new UsageError(`--stream must be upstream, downstream or both: ${o.stream}`)
    picked.push(o.stream as FaultStream)
  }
  if (new Set(picked).size > 1) throw new UsageError('give one of --upstream, --downstream, --both')
  return picked[0]
}

/** Where the commands read the environment and write their output: the process's, unless a test says otherwise. */
export interface ClientIO {
  stdout: { write(s: string): unknown }
  stderr: { write(s: string): unknown }
  env: Readonly<Record<string, string | undefined>>
  /** Called once when a command fails, after its message is written (default: process.exitCode = code). */
  setExitCode(code: number): void
}

export function registerClientCommands(program: Command, ioOverrides: Partial<ClientIO> = {}): void {
  const io: ClientIO = {
    stdout: process.stdout, stderr: process.stderr, env: process.env,
    setExitCode: code => { process.exitCode = code },
    ...ioOverrides,
  }
  const out = (s: string) => { io.stdout.write(s) }
  const printJSON = (v: unknown) => out(JSON.stringify(v, null, 2) + '\n')

  const clientFor = (cmd: Command): { client: Coquin; json: boolean } => {
    const url = (inherited(cmd, 'control') as string | undefined) ?? io.env.COQUIN_URL ?? DEFAULT_URL
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

  if (!program.options.some(o => o.long === '--control')) {
    program.option('--control <url>', `control API URL for the client commands (env COQUIN_URL, default ${DEFAULT_URL})`)
  }
  const enc = encodeURIComponent

  withConn(program.command('list').aliases(['ls', 'l', 'li'])
    .description('list the proxies of a running server'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<Record<string, ProxyInfo>>('GET', '/proxies')
      if (json) return printJSON(all)
      const proxies = Object.values(all ?? {}).sort((a, b) => a.name.localeCompare(b.name))
      if (proxies.length === 0) return out('no proxies: add one with `coquin create NAME -l ADDR -u ADDR`\n')
      out(formatTable(['NAME', 'LISTEN', 'UPSTREAM', 'ENABLED', 'TOXICS'], proxies.map(p => [
        p.name, p.listen, p.upstream, String(p.enabled),
        p.toxics?.length ? p.toxics.map(t => t.name).join(', ') : '-',
      ])))
    }))

  withConn(program.command('inspect').aliases(['i', 'ins'])
    .description('show a proxy and its toxics')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const p = await client.request<ProxyInfo>('GET', `/proxies/${enc(name)}`)
      if (json) return printJSON(p)
      out(formatPairs([
        ['name', p.name], ['listen', p.listen], ['upstream', p.upstream], ['enabled', String(p.enabled)],
        ...(p.protocol ? [['protocol', p.protocol] as const] : []),
      ]))
      out(p.toxics?.length ? '\n' + toxicsTable(p.toxics) : 'toxics    none\n')
    }))

  withConn(program.command('create').aliases(['c', 'new'])
    .description('create a proxy')
    .argument('<proxy>', 'proxy name')
    .option('-l, --listen <addr>', 'address to listen on, host:port (default: the server picks, 127.0.0.1:0 on coquin)')
    .requiredOption('-u, --upstream <addr>', 'address to forward to, host:port')
    .addOption(new Option('--protocol <protocol>', 'tcp, or http for HTTP faults (coquin only)').choices(['tcp', 'http']))
    .option('--disabled', 'create it disabled'))
    .action(action(async (cmd, name: string) => {
      const o = cmd.opts<{ listen?: string; upstream: string; protocol?: string; disabled?: boolean }>()
      const { client, json } = clientFor(cmd)
      const p = await client.request<ProxyInfo>('POST', '/proxies', {
        name, upstream: o.upstream, ...(o.listen !== undefined ? { listen: o.listen } : {}),
        ...(o.protocol ? { protocol: o.protocol } : {}), ...(o.disabled ? { enabled: false } : {}),
      })
      if (json) return printJSON(p)
      out(`created proxy ${p.name}: ${p.listen} -> ${p.upstream}${p.enabled ? '' : ' (disabled)'}\n`)
    }))

  withConn(program.command('toggle').aliases(['tog'])
    .description('enable a disabled proxy, disable an enabled one (closing its connections)')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const before = await client.request<ProxyInfo>('GET', `/proxies/${enc(name)}`)
      const p = await client.request<ProxyInfo>('POST', `/proxies/${enc(name)}`, { enabled: !before.enabled })
      if (json) return printJSON(p)
      out(`proxy ${p.name} ${p.enabled ? 'enabled' : 'disabled'}\n`)
    }))

  withConn(program.command('delete').aliases(['d', 'rm'])
    .description('delete a proxy, closing its connections')
    .argument('<proxy>', 'proxy name'), false)
    .action(action(async (cmd, name: string) => {
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/proxies/${enc(name)}`)
      out(`deleted proxy ${name}\n`)
    }))

  withConn(program.command('reset')
    .description('enable every proxy and remove every toxic'), false)
    .action(action(async cmd => {
      const { client } = clientFor(cmd)
      await client.request('POST', '/reset')
      out('reset: every proxy enabled, every toxic removed\n')
    }))

  const toxic = program.command('toxic').aliases(['t'])
    .description('add, update or remove a toxic (a fault) on a proxy')
  const nameOption = (dflt = '') => new Option('-n, --name <name>', `toxic name${dflt}`)
  const hidden = (flags: string) => new Option(flags).hideHelp()
  const attrOption = () => new Option('-a, --attribute <key=value>',
    'an attribute, repeatable; numbers and true/false are sent as such').argParser(attribute)
  const toxOption = (dflt = '') => new Option('--tox, --toxicity <f>', `share of connections it hits, 0 to 1${dflt}`).argParser(toxicity)

  withConn(toxic.command('add').aliases(['a'])
    .description('add a toxic to a proxy')
    .argument('<proxy>', 'proxy name')
    .requiredOption('-t, --type <type>', 'toxic type: latency, ... (`coquin types` lists them)')
    .addOption(nameOption(' (default: <type>_<stream>)'))
    .addOption(hidden('--toxicName <name>'))
    .addOption(toxOption(' (default: 1)'))
    .addOption(attrOption())
    .option('-u, --upstream', 'on the client -> server stream')
    .option('-d, --downstream', 'on the server -> client stream (the default)')
    .option('--both', 'on both streams (coquin only)')
    .addOption(new Option('-s, --stream <stream>', 'upstream, downstream or both').hideHelp()))
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ type: string; name?: string; toxicName?: string; toxicity?: number; attribute?: Record<string, unknown>
        upstream?: boolean; downstream?: boolean; both?: boolean; stream?: string }>()
      const { client, json } = clientFor(cmd)
      const stream = streamOf(o)
      const name = o.name ?? o.toxicName
      const t = await client.request<Fault>('POST', `/proxies/${enc(proxy)}/toxics`, {
        type: o.type, ...(name ? { name } : {}), ...(stream ? { stream } : {}),
        ...(o.toxicity !== undefined ? { toxicity: o.toxicity } : {}), attributes: o.attribute ?? {},
      })
      if (json) return printJSON(t)
      out(`added toxic ${t.name} to ${proxy}: ${t.type} on ${t.stream}, toxicity ${t.toxicity}, ${formatAttributes(t.attributes)}\n`)
    }))

  withConn(toxic.command('update').aliases(['u'])
    .description('change a toxic\'s toxicity or attributes (others keep their values)')
    .argument('<proxy>', 'proxy name')
    .addOption(nameOption())
    .addOption(hidden('--toxicName <name>'))
    .addOption(toxOption())
    .addOption(attrOption()))
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ name?: string; toxicName?: string; toxicity?: number; attribute?: Record<string, unknown> }>()
      const name = o.name ?? o.toxicName
      if (!name) throw new UsageError('toxic update: give the toxic\'s name with -n NAME')
      if (o.toxicity === undefined && o.attribute === undefined) throw new UsageError('toxic update: nothing to change: give --tox F and/or -a key=value')
      const { client, json } = clientFor(cmd)
      const t = await client.request<Fault>('POST', `/proxies/${enc(proxy)}/toxics/${enc(name)}`, {
        ...(o.toxicity !== undefined ? { toxicity: o.toxicity } : {}), ...(o.attribute ? { attributes: o.attribute } : {}),
      })
      if (json) return printJSON(t)
      out(`updated toxic ${t.name} on ${proxy}: toxicity ${t.toxicity}, ${formatAttributes(t.attributes)}\n`)
    }))

  withConn(toxic.command('remove').aliases(['r', 'rm', 'delete', 'd'])
    .description('remove a toxic from a proxy (what it holds is passed on)')
    .argument('<proxy>', 'proxy name')
    .addOption(nameOption())
    .addOption(hidden('--toxicName <name>')), false)
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ name?: string; toxicName?: string }>()
      const name = o.name ?? o.toxicName
      if (!name) throw new UsageError('toxic remove: give the toxic\'s name with -n NAME')
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/proxies/${enc(proxy)}/toxics/${enc(name)}`)
      out(`removed toxic ${name} from ${proxy}\n`)
    }))

  program.command('types')
    .description('list the toxic types built into this coquin, with their attributes and defaults')
    .option('--json', 'print type, summary and attribute schema as JSON')
    .action(action(async cmd => {
      const { builtins } = await import('../behaviors/index.js')
      const attrs = (b: (typeof builtins)[number]) =>
        Object.entries(b.attributes.properties).map(([k, s]) => [k, (s as { default?: unknown }).default] as const)
      if (cmd.opts().json) {
        return printJSON(builtins.map(b => ({ type: b.type, summary: b.summary, attributes: b.attributes })))
      }
      out(formatTable(['TYPE', 'ATTRIBUTES (DEFAULTS)', 'SUMMARY'], builtins.map(b => [
        b.type, attrs(b).map(([k, d]) => d === undefined ? k : `${k}=${formatValue(d)}`).join(' ') || '-', b.summary,
      ])))
      out('every type also takes after=0 (skip the first N connections) and count=0 (stop after N; 0 = no limit)\n')
    }))
}
