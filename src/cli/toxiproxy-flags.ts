// toxiproxy-server's and toxiproxy-cli's command lines, read as coquin's: so that a compose file, a
// testcontainers module or a script written for Toxiproxy starts and drives coquin unchanged.
//
//   coquin -host=0.0.0.0 -config=/config/toxiproxy.json    →  coquin serve --host 0.0.0.0 --config /config/toxiproxy.json
//   coquin -port 8475 -seed 42 -proxy-metrics             →  coquin serve --port 8475 --seed 42
//   coquin -h 127.0.0.1:8474 list                         →  coquin --control http://127.0.0.1:8474 list
//
// Go's flag package takes `-flag=value`, `-flag value` and `--flag` alike, and booleans as `-flag` or
// `-flag=true`. `-proxy-metrics` and `-runtime-metrics` are accepted and ignored: coquin always serves
// both on /metrics. LOG_LEVEL (Toxiproxy's) sets the log level unless --log-level is given.

/** toxiproxy-server's flags that take a value, and coquin's names for them. */
const VALUE_FLAGS: Record<string, string> = { host: '--host', port: '--port', config: '--config', seed: '--seed' }
const BOOL_FLAGS = new Set(['proxy-metrics', 'runtime-metrics'])
/** Go's (logrus') level names, as coquin's. */
const LEVELS: Record<string, string> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error', fatal: 'fatal', panic: 'fatal' }

/** A single-dash long flag (`-host`, `-config=x`): the form coquin's own options never take. */
const GO_FLAG = /^-([a-z][a-z-]+)(?:=(.*))?$/

/**
 * Rewrites the arguments after `node coquin` when they are Toxiproxy's; any other command line comes back
 * as it was. `commands`: coquin's subcommand names.
 */
export function fromToxiproxyArgs(args: readonly string[], env: Readonly<Record<string, string | undefined>>, commands: readonly string[]): string[] {
  const first = args[0]
  // toxiproxy-cli: -h HOST:PORT (or --host) before a command; coquin's -h alone stays help.
  if ((first === '-h' || first === '--host') && args[1] !== undefined && /^[^-][^\s]*:\d+$/.test(args[1]) && commands.includes(args[2] ?? '')) {
    const target = /^https?:\/\//.test(args[1]) ? args[1] : `http://${args[1]}`
    return ['--control', target, ...args.slice(2)]
  }
  if (first === undefined || commands.includes(first) && first !== 'serve') return [...args]
  const rest = first === 'serve' ? args.slice(1) : args
  if (!rest.some(isToxiproxyServerFlag) && first === 'serve') return withLogLevel([...args], env)
  if (!rest.some(isToxiproxyServerFlag)) return [...args]
  const out = ['serve']
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    const m = GO_FLAG.exec(a.startsWith('--') && isToxiproxyServerFlag(a.slice(1)) ? a.slice(1) : a)
    if (!m || !(m[1]! in VALUE_FLAGS || BOOL_FLAGS.has(m[1]!))) { out.push(a); continue }
    const name = m[1]!
    if (BOOL_FLAGS.has(name)) continue
    const value = m[2] ?? rest[++i]
    if (value === undefined) throw new Error(`flag needs an argument: -${name}`)
    out.push(VALUE_FLAGS[name]!, value)
  }
  return withLogLevel(out, env)
}

function isToxiproxyServerFlag(a: string): boolean {
  const m = GO_FLAG.exec(a)
  return m !== null && (m[1]! in VALUE_FLAGS || BOOL_FLAGS.has(m[1]!))
}

function withLogLevel(args: string[], env: Readonly<Record<string, string | undefined>>): string[] {
  const level = env.LOG_LEVEL?.toLowerCase()
  if (level === undefined || args.includes('--log-level')) return args
  const ours = LEVELS[level]
  if (ours === undefined) throw new Error(`LOG_LEVEL must be one of ${Object.keys(LEVELS).join(', ')}: ${env.LOG_LEVEL}`)
  return [...args, '--log-level', ours]
}
