#!/usr/bin/env node
// The `coquin` command: `serve` and the one-shot `proxy` start a server; the other subcommands drive
// a running one through its control API. The only file that reads argv/env or calls process.exit.
import { Command, Option } from 'commander'
import { createLogger } from '../core/log.js'
import type { StartOptions } from '../server.js'
import { registerClientCommands } from './commands.js'
import { parseFaultFlag } from './fault-flag.js'
import { version } from '../core/version.js'
import { fromToxiproxyArgs } from './toxiproxy-flags.js'

function fail(err: unknown): never {
  const e = err as Error & { code?: string }
  process.stderr.write(`coquin: ${e.message ?? String(err)}\n`)
  process.exit(1)
}

const int = (what: string) => (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer: ${v}`)
  return n
}

const positive = (what: string) => (v: string) => {
  const n = int(what)(v)
  if (n < 1) throw new Error(`${what} must be a positive integer: ${v}`)
  return n
}

function serverOptions(cmd: Command): Command {
  return cmd
    .option('--host <host>', 'control API address', '127.0.0.1')
    .option('--port <port>', 'control API port', int('--port'), 8474)
    .option('--seed <n>', 'seed for every random draw (toxicity, jitter…): a run can be replayed', int('--seed'))
    .option('--token <token>', 'require `Authorization: Bearer <token>` on the control API (env COQUIN_TOKEN)')
    .option('--grace <ms>', 'on SIGTERM/SIGINT, how long open links may go on before they are cut (a second signal exits at once)', int('--grace'), 5000)
    .option('--max-links <n>', 'links open at once over all proxies; above it new connections are reset and counted (default: what `ulimit -n` allows, keeping a reserve)', positive('--max-links'))
    .option('--journal-size <n>', 'events the journal keeps for GET /events and `coquin events` (oldest go first)', positive('--journal-size'), 10_000)
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .addOption(new Option('--log-format <format>', 'json, or pretty for people').choices(['json', 'pretty']).default(process.stderr.isTTY ? 'pretty' : 'json'))
}

async function run(opts: StartOptions & { host: string; grace: number; logLevel: string; logFormat: 'json' | 'pretty' }): Promise<void> {
  const log = createLogger({ level: opts.logLevel, format: opts.logFormat })
  const token = opts.token ?? process.env.COQUIN_TOKEN
  const loopback = /^(127\.|::1$|localhost$)/.test(opts.host)
  if (!loopback && !token) log.warn({ host: opts.host }, 'control API bound to a non-loopback address without --token: anyone who can reach it can change faults')
  let server
  try {
    // Loaded here, not at the top: client subcommands stay quick to start.
    const { startCoquin } = await import('../server.js')
    server = await startCoquin({ ...opts, graceMs: opts.grace, log, ...(token ? { token } : {}) })
  } catch (err) {
    fail(err)
  }
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) process.exit(1)
    stopping = true
    log.info({ signal, graceMs: opts.grace, links: [...server.registry.proxies.values()].reduce((n, p) => n + p.connections, 0) }, 'stopping')
    server.close().then(() => { log.flush(); process.exit(0) }, err => fail(err))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.stdout.write(`coquin ${version}: control API on ${server.url}, ${server.registry.proxies.size} proxies\n`)
  for (const p of server.registry.proxies.values()) {
    process.stdout.write(`  ${p.name}: ${p.address} -> ${p.upstream}${p.faults.length ? `  [${p.faults.map(f => f.name).join(', ')}]` : ''}\n`)
  }
}

const program = new Command('coquin')
  .description('A chaos and fault-injection proxy for TCP and HTTP, speaking Toxiproxy\'s API')
  .version(version)
  .showHelpAfterError('(add --help for usage)')
  .enablePositionalOptions(false)

serverOptions(program.command('serve')
  .description('start the server: every proxy in the config and the control API')
  .option('-c, --config <file>', 'config file (YAML, or Toxiproxy\'s JSON array)')
  .option('--watch', 're-read the config file on change and apply the difference'))
  .action(o => run(o))

serverOptions(program.command('proxy')
  .description('one-shot: start a server with one proxy and its faults, no config file')
  .requiredOption('-l, --listen <addr>', 'address to listen on, e.g. 127.0.0.1:8000')
  .requiredOption('-u, --upstream <addr>', 'where to forward, e.g. 127.0.0.1:80')
  .option('-n, --name <name>', 'proxy name', 'proxy')
  .option('-f, --fault <spec>', 'a fault: [N%:]TYPE[:key=value,...], e.g. latency:latency=100 or 20%:reset_peer (repeatable)',
    (v: string, acc: string[]) => [...acc, v], [] as string[]))
  .action((o: { listen: string; upstream: string; name: string; fault: string[] } & Parameters<typeof run>[0]) => {
    let toxics
    try { toxics = o.fault.map(parseFaultFlag) } catch (err) { fail(err) }
    return run({ ...o, proxies: [{ name: o.name, listen: o.listen, upstream: o.upstream, toxics }] })
  })

program.command('cert')
  .description('make a throwaway self-signed certificate (EC P-256, its own CA) for tls.listen')
  .argument('[names...]', 'DNS names and IP addresses it is for', ['localhost', '127.0.0.1', '::1'])
  .option('-o, --out <dir>', 'write cert.pem and key.pem there (default: print both to stdout)')
  .option('--days <n>', 'validity in days', positive('--days'), 30)
  .action(async (names: string[], o: { out?: string; days: number }) => {
    try {
      const { selfSignedCertificate } = await import('../datapath/tls.js')
      const c = await selfSignedCertificate(names, o.days)
      if (!o.out) { process.stdout.write(c.cert + c.key); return }
      const { mkdir, writeFile } = await import('node:fs/promises')
      const path = await import('node:path')
      await mkdir(o.out, { recursive: true })
      await writeFile(path.join(o.out, 'cert.pem'), c.cert)
      await writeFile(path.join(o.out, 'key.pem'), c.key, { mode: 0o600 })
      process.stdout.write(`${path.join(o.out, 'cert.pem')} and key.pem for ${names.join(', ')}, ${o.days} days, SHA-256 ${c.fingerprint}\n` +
        `clients trust it as their CA, e.g. curl --cacert ${path.join(o.out, 'cert.pem')}\n`)
    } catch (err) { fail(err) }
  })

registerClientCommands(program)

let args: string[]
try {
  args = fromToxiproxyArgs(process.argv.slice(2), process.env, program.commands.map(c => c.name()))
} catch (err) { fail(err) }
program.parseAsync(args, { from: 'user' }).catch(fail)
