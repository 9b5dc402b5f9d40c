// The CLI commands that drive a running coquin (or Toxiproxy) through its control API, named as in
// toxiproxy-cli: list, inspect, create, toggle, delete, toxic add|update|remove, reset, plus types.
// Tables for people, --json for scripts (the server's JSON as it came). Errors go to stderr as
// `coquin: <message>` with exit code 1 (process.exitCode: nothing here calls process.exit). Output,
// environment and exit code go through ClientIO, so tests can run the commands in-process.
import { Command, InvalidArgumentError, Option } from 'commander'
import {
  Coquin, CoquinApiError, CoquinUnreachableError, type DroppedNotice, type EventFilter, type Fault, type FaultStream,
  type JournalEvent, type JournalEventType, type LinkInfo, type ProxyInfo,
} from '../client/index.js'
import type { PartitionInfo, ScenarioInfo } from '../client/index.js'
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

const count = (what: string) => (v: string): number => {
  const n = Number(v)
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer.`)
  return n
}

/** `--proxy a,b --proxy c` → ['a', 'b', 'c']. */
const list = (v: string, acc: string[] = []): string[] => [...acc, ...v.split(',').map(x => x.trim()).filter(x => x !== '')]

/** One journal event as a line for people: id, time, proxy, link, type, then what the type carries. */
export function formatEvent(e: JournalEvent): string {
  const head = `${e.id} ${new Date(e.time).toISOString()} ${e.proxy} link=${e.link} ${e.type}`
  switch (e.type) {
    case 'link_open': return `${head} client=${e.client}`
    case 'link_close':
      return `${head} reason=${e.reason} up=${e.bytes_upstream} down=${e.bytes_downstream} ms=${e.duration_ms}${e.error ? ` error=${e.error}` : ''}`
    case 'fault': return `${head} toxic=${e.toxic} type=${e.toxic_type} stream=${e.stream}${e.request ? ` request=${e.request}` : ''}`
    case 'fault_acted':
      return `${head} toxic=${e.fault} type=${e.toxic_type} action=${e.action}${e.stream ? ` stream=${e.stream}` : ''}${e.request ? ` request=${e.request}` : ''}`
    case 'http_request':
      return `${head} ${e.method} ${e.path} ${e.status} source=${e.source} ms=${e.latency_ms} request=${e.request}` +
        (e.faults?.length ? ` faults=${e.faults.join(',')}` : '')
    default: return `${head} ${JSON.stringify(e)}`
  }
}

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
    .option('--control <url>', `control API URL (env COQUIN_URL or TOXIPROXY_URL, default ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token for a server started with --token (env COQUIN_TOKEN)')
}

/** A long default (http_throttle's XML body) cut to n characters, on one line, so the table stays readable. */
function shorten(s: string, n: number): string {
  const line = s.replace(/\s+/g, ' ')
  return line.length <= n ? line : `${line.slice(0, n - 1)}…`
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

/** `250` → `250ms`, `1500` → `1.5s`, `120000` → `2m`: durations for people. */
function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000}m` : `${(ms / 1000).toFixed(1)}s`
}

/** `blackhole, both, clients 127.0.0.2, heals in 10.0s` */
function partitionHow(p: PartitionInfo): string {
  return [p.mode, ...(p.mode === 'blackhole' ? [p.direction] : []), ...(p.clients ? [`clients ${p.clients.join(' ')}`] : []),
    ...(p.duration !== undefined ? [`heals in ${seconds(p.duration)}`] : []),
    ...(p.flap ? [`flapping up ${seconds(p.flap.up)} / down ${seconds(p.flap.down)}`] : [])].join(', ')
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

export function registerClientCommands(program: Command, ioOverrides: Partial<ClientIO> = {}): void {
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

  if (!program.options.some(o => o.long === '--control')) {
    program.option('--control <url>', `control API URL for the client commands (env COQUIN_URL or TOXIPROXY_URL, default ${DEFAULT_URL})`)
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

  withConn(program.command('events').aliases(['ev'])
    .description('show the journal: links opened and closed, faults applied, HTTP requests (coquin only)')
    .option('-f, --follow', 'keep printing events as they happen, until Ctrl-C')
    .option('--proxy <name>', 'only this proxy\'s events (repeatable, or comma-separated)', list)
    .option('--type <type>', 'only events of this type: link_open, link_close, fault, fault_acted, http_request, http_fallback (repeatable, or comma-separated)', list)
    .option('--since <id>', 'only events after this id', count('--since'))
    .option('--limit <n>', 'at most n events (the most recent, or the first after --since; with -f, stop after n)', count('--limit')))
    .action(action(async cmd => {
      const o = cmd.opts<{ follow?: boolean; proxy?: string[]; type?: string[]; since?: number; limit?: number }>()
      const { client, json } = clientFor(cmd)
      const filter: EventFilter = {
        ...(o.proxy?.length ? { proxy: o.proxy } : {}), ...(o.type?.length ? { type: o.type as JournalEventType[] } : {}),
        ...(o.since !== undefined ? { since: o.since } : {}), ...(o.limit !== undefined ? { limit: o.limit } : {}),
      }
      if (!o.follow) {
        const events = await client.events(filter)
        if (json) return printJSON(events)
        for (const e of events) out(formatEvent(e) + '\n')
        return
      }
      for await (const item of client.follow(filter)) {          // NDJSON with --json: one event per line
        if (item.type === 'dropped') {
          const d = item as DroppedNotice
          if (json) out(JSON.stringify(d) + '\n')
          else io.stderr.write(`coquin: ${d.dropped} events dropped (reading too slowly); \`coquin events --since ${d.after}\` shows what the journal still holds\n`)
        } else {
          out((json ? JSON.stringify(item) : formatEvent(item)) + '\n')
        }
      }
    }))

  withConn(program.command('links')
    .description('list the open links (connections) of a proxy, with bytes, idle time and faults (coquin only)')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const links = await client.request<LinkInfo[]>('GET', `/proxies/${enc(name)}/links`)
      if (json) return printJSON(links)
      if (!links?.length) return out(`no open links on ${name}\n`)
      out(formatTable(['ID', 'CLIENT', 'OPENED', 'IDLE_MS', 'UP', 'DOWN', 'TOXICS'], links.map(l => [
        String(l.id), l.client, new Date(l.opened_at).toISOString(), String(l.idle_ms),
        String(l.bytes_upstream), String(l.bytes_downstream), l.toxics.length ? l.toxics.join(', ') : '-',
      ])))
    }))

  // Partitions and scenarios (coquin only) ------------------------------------------------------

  const names = (v: string, acc: string[] = []): string[] => [...acc, ...v.split(',').map(x => x.trim()).filter(x => x !== '')]
  /** A time for the server: a number of ms stays a number, `10s` stays a string. */
  const time = (v: string): number | string => (/^\d+$/.test(v.trim()) ? Number(v) : v.trim())
  const partition = program.command('partition').aliases(['pt'])
    .description('cut, heal and list partitions: cuts of the paths through proxies (coquin only)')

  withConn(partition.command('cut')
    .description('cut the paths through proxies, for open links and new ones')
    .argument('<name>', 'partition name')
    .requiredOption('-p, --proxy <name>', 'a proxy whose paths are cut (repeatable, or comma-separated)', names)
    .addOption(new Option('--mode <mode>', 'blackhole: drop bytes, heal restores flow; hold: hold bytes, heal delivers them; ' +
      'reset: RST open links and new connects; refuse: refuse new connects only (default blackhole)').choices(['blackhole', 'hold', 'reset', 'refuse']))
    .addOption(new Option('--direction <direction>', 'blackhole only: upstream (client -> server), downstream or both (default both)')
      .choices(['both', 'upstream', 'downstream']))
    .option('--client <cidr>', 'cut only links from this client address or CIDR (repeatable, or comma-separated)', names)
    .option('--duration <time>', 'heal automatically after this long: ms, or 500ms, 10s, 1m')
    .option('--flap <up:down>', 'alternate cut (down) and healed (up), starting cut: e.g. 2s:1s'))
    .action(action(async (cmd, name: string) => {
      const o = cmd.opts<{ proxy: string[]; mode?: string; direction?: string; client?: string[]; duration?: string; flap?: string }>()
      let flap: { up: number | string; down: number | string } | undefined
      if (o.flap !== undefined) {
        const [up, down, extra] = o.flap.split(':')
        if (!up || !down || extra !== undefined) throw new UsageError(`--flap must be UP:DOWN, e.g. 2s:1s: ${o.flap}`)
        flap = { up: time(up), down: time(down) }
      }
      const { client, json } = clientFor(cmd)
      const p = await client.request<PartitionInfo>('POST', '/partitions', {
        name, proxies: o.proxy, ...(o.mode ? { mode: o.mode } : {}), ...(o.direction ? { direction: o.direction } : {}),
        ...(o.client?.length ? { clients: o.client } : {}), ...(o.duration !== undefined ? { duration: time(o.duration) } : {}),
        ...(flap ? { flap } : {}),
      })
      if (json) return printJSON(p)
      out(`cut partition ${p.name}: ${p.proxies.join(', ')} (${partitionHow(p)})\n`)
    }))

  withConn(partition.command('heal')
    .description('heal a partition: blackholed links flow again, new connections pass')
    .argument('<name>', 'partition name'), false)
    .action(action(async (cmd, name: string) => {
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/partitions/${enc(name)}`)
      out(`healed partition ${name}\n`)
    }))

  withConn(partition.command('list').aliases(['ls'])
    .description('list the partitions'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<PartitionInfo[]>('GET', '/partitions')
      if (json) return printJSON(all)
      if (!all?.length) return out('no partitions: cut one with `coquin partition cut NAME -p PROXY`\n')
      out(formatTable(['NAME', 'PROXIES', 'MODE', 'DIRECTION', 'CLIENTS', 'STATE', 'HEALS IN'], all.map(p => [
        p.name, p.proxies.join(','), p.mode, p.direction, p.clients?.join(',') ?? 'all', p.state,
        p.remaining_ms !== undefined ? seconds(p.remaining_ms) : '-',
      ])))
    }))

  const scenario = program.command('scenario').aliases(['sc'])
    .description('run a timeline of faults, partitions and proxy states (coquin only)')

  withConn(scenario.command('run')
    .description('run a scenario file against the server, showing each step; Ctrl-C stops it and undoes what it applied')
    .argument('<file>', 'scenario file (YAML)'))
    .action(action(async (cmd, file: string) => {
      let text: string
      try {
        const { readFile } = await import('node:fs/promises')
        text = await readFile(file, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read scenario ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
      }
      const { client, json } = clientFor(cmd)
      let info = await client.request<ScenarioInfo>('POST', '/scenarios', { yaml: text, file })
      const path = `/scenarios/${enc(info.id)}`
      if (!json) {
        out(`scenario ${info.name} (id ${info.id}): ${info.steps} step${info.steps === 1 ? '' : 's'}` +
          `${info.repeat > 1 ? ` x ${info.repeat} passes` : ''}, ${seconds(info.duration_ms)}; Ctrl-C stops it and undoes what it applied\n`)
      }
      let seen = 0                                   // pass * steps + step of the last record printed
      const show = () => {
        for (const r of info.log) {
          const key = (r.pass - 1) * info.steps + r.step
          if (key <= seen) continue
          seen = key
          if (json) continue
          const where = `step ${r.step}/${info.steps}${info.repeat > 1 ? ` (pass ${r.pass}/${info.repeat})` : ''}`
          out(`[${seconds(r.at_ms).padStart(7)}] ${where}: ${r.did}${r.error ? ` FAILED: ${r.error}` : ''}  (${seconds(Math.max(0, info.duration_ms - r.at_ms))} left)\n`)
        }
      }
      let interrupted = false
      let wake: (() => void) | undefined
      const off = io.onInterrupt(() => { interrupted = true; wake?.() })
      try {
        for (;;) {
          show()
          if (info.state !== 'running') break
          if (interrupted) {
            await client.request('DELETE', path)
            info = await client.request<ScenarioInfo>('GET', path)
            show()
            break
          }
          await new Promise<void>(resolve => {
            const timer = setTimeout(() => { wake = undefined; resolve() }, Math.min(100, Math.max(1, info.remaining_ms)))
            wake = () => { clearTimeout(timer); wake = undefined; resolve() }
          })
          if (!interrupted) info = await client.request<ScenarioInfo>('GET', path)
        }
      } finally {
        off()
      }
      if (json) printJSON(info)
      else if (info.state === 'done') out(`scenario ${info.name} done in ${seconds(info.elapsed_ms)}\n`)
      else {
        const undone = info.undone?.length ? info.undone.join('; ') : 'nothing'
        out(`scenario ${info.name} ${info.state}${interrupted ? ' (interrupted)' : ''} after ${seconds(info.elapsed_ms)}; undone: ${undone}\n`)
      }
      if (info.state === 'failed') throw new UsageError(`scenario ${info.name} failed: ${info.error ?? 'unknown error'}`)
      if (info.state === 'stopped') io.setExitCode(interrupted ? 130 : 1)
    }))

  scenario.command('check')
    .description('check a scenario file against the schema of this coquin\'s behaviors, without a server')
    .argument('<file>', 'scenario file (YAML)')
    .action(action(async (_cmd, file: string) => {
      const [{ builtins }, { loadScenario }] = await Promise.all([import('../../behaviors/index.js'), import('../control/scenario.js')])
      let s
      try {
        s = await loadScenario(file, builtins)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
      out(`${file}: ok: scenario ${s.name}, ${s.steps.length} step${s.steps.length === 1 ? '' : 's'}` +
        `${s.repeat > 1 ? ` x ${s.repeat} passes` : ''}, ${seconds(s.repeat * s.duration)}\n`)
    }))

  withConn(scenario.command('list').aliases(['ls'])
    .description('list running scenarios and the last few finished'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<ScenarioInfo[]>('GET', '/scenarios')
      if (json) return printJSON(all)
      if (!all?.length) return out('no scenarios: run one with `coquin scenario run FILE`\n')
      out(formatTable(['ID', 'NAME', 'STATE', 'STEPS DONE', 'ELAPSED', 'LEFT', 'NEXT'], all.map(r => [
        r.id, r.name, r.state, `${r.log.length}/${r.steps * r.repeat}`, seconds(r.elapsed_ms), seconds(r.remaining_ms),
        r.next ? `${seconds(r.next.at_ms)}: ${r.next.does}` : '-',
      ])))
    }))

  withConn(scenario.command('stop')
    .description('stop a running scenario and undo what it applied')
    .argument('<id>', 'scenario id (`coquin scenario list`)'))
    .action(action(async (cmd, id: string) => {
      const { client, json } = clientFor(cmd)
      await client.request('DELETE', `/scenarios/${enc(id)}`)
      const info = await client.request<ScenarioInfo>('GET', `/scenarios/${enc(id)}`).catch(() => undefined)
      if (json) return printJSON(info ?? null)
      out(`stopped scenario ${id}${info ? `; undone: ${info.undone?.length ? info.undone.join('; ') : 'nothing'}` : ''}\n`)
    }))

  program.command('types')
    .description('list the toxic types built into this coquin, with their attributes and defaults')
    .option('--json', 'print type, summary and attribute schema as JSON')
    .action(action(async cmd => {
      const { builtins } = await import('../../behaviors/index.js')
      const attrs = (b: (typeof builtins)[number]) =>
        Object.entries(b.attributes.properties).map(([k, s]) => [k, (s as { default?: unknown }).default] as const)
      if (cmd.opts().json) {
        return printJSON(builtins.map(b => ({ type: b.type, summary: b.summary, attributes: b.attributes })))
      }
      out(formatTable(['TYPE', 'ATTRIBUTES (DEFAULTS)', 'SUMMARY'], builtins.map(b => [
        b.type, attrs(b).map(([k, d]) => d === undefined ? k : `${k}=${shorten(formatValue(d), 32)}`).join(' ') || '-', b.summary,
      ])))
      out('every type also takes after=0 (skip the first N connections) and count=0 (stop after N; 0 = no limit)\n')
    }))
}
