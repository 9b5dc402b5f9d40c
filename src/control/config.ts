// Config files: one JSON Schema, generated from the behaviors' attribute schemas, checks the core
// keys and every fault's attributes. All issues are collected, each mapped back through the YAML
// node ranges to file:line:column and a field path, before one ConfigInvalidError. The checked
// config has its defaults filled in and is deeply frozen. applyConfig brings a registry to it.
import { accessSync, constants } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { FileReadError, readRegularFile } from '../core/files.js'
import path from 'node:path'
import type { ErrorObject, ValidateFunction } from 'ajv'
import { createAjv } from '../spec/ajv.js'
import { Document as YamlDocument, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml'
import type { Behavior } from '../faults/behavior.js'
import { attributeSchema, toxicName, type FaultStream } from '../faults/fault.js'
import { HTTP_FALLBACK_POLICIES, type HttpFallbackPolicy } from '../protocols/http/index.js'
import { isProtocol, protocolMismatch, PROTOCOLS, type Protocol } from '../protocols/index.js'
import { normalizePartition, partitionProblems, partitionSchema, type PartitionConfig, type PartitionSpec } from './partition.js'
import { parseAddress, PROXY_NAME, PROXY_NAME_RULE } from '../datapath/proxy.js'
import type { ProxySpec, Registry } from './registry.js'
import type { TlsSpec } from '../datapath/tls.js'
import { ConfigInvalidError, ConfigReadError, type CoquinError } from '../core/errors.js'

export const SCHEMA_ID = 'urn:coquin:config'
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export interface ToxicConfig {
  readonly name: string
  readonly type: string
  readonly stream: FaultStream
  readonly toxicity: number
  readonly attributes: Readonly<Record<string, unknown>>
}

/** A proxy as a checked config gives it: every default filled in, toxics named. */
export interface ProxyConfig extends ProxySpec {
  readonly name: string
  readonly listen: string
  readonly upstream: string
  readonly enabled: boolean
  readonly protocol: Protocol
  readonly header_faults: boolean
  readonly http_fallback: HttpFallbackPolicy
  /** File paths made absolute (relative to the config's folder) at load. */
  readonly tls?: TlsSpec
  readonly toxics: readonly ToxicConfig[]
}

export interface Settings {
  readonly seed?: number
  readonly log_level?: (typeof LOG_LEVELS)[number]
  /** coquin's built-in demo upstreams (see src/control/demo.ts), for the default config. */
  readonly demo?: { readonly echo?: string; readonly http?: string }
}

export interface Config {
  readonly file: string
  readonly proxies: readonly ProxyConfig[]
  /** Partitions cut when the config is applied (src/control/partition.ts); times in ms. Absent when none. */
  readonly partitions?: readonly PartitionConfig[]
  readonly settings: Settings
}

export interface ConfigIssue {
  file: string
  line: number
  column: number
  /** The field, as `proxies[0].toxics[1].attributes.latency`; `(root)` for the document itself, '' for a YAML syntax error. */
  path: string
  message: string
}

// Schema ----------------------------------------------------------------------------------------

/** JSON, without TypeBox's symbol keys: what is written to coquin.schema.json. */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

function toxicSchema(b: Behavior): object {
  return {
    type: 'object',
    title: b.type,
    description: b.summary,
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { const: b.type },
      name: { type: 'string', description: 'unique within the proxy; default (absent or "") `<type>_<stream>`' },
      stream: {
        enum: ['upstream', 'downstream', 'both'], default: 'downstream',
        description: 'upstream = client → server, downstream = server → client, both = one fault on each',
      },
      toxicity: { type: 'number', minimum: 0, maximum: 1, default: 1, description: 'share of links (HTTP: requests) it hits, 0 to 1' },
      attributes: { ...plain(attributeSchema(b)), default: {}, description: `${b.type}'s attributes` },
    },
  }
}

/**
 * The JSON Schema (draft-07) of a coquin config, generated from the behaviors. Toxics are a `oneOf`
 * on `type` (with ajv's `discriminator`, which other validators ignore), so an editor completes and
 * checks each type's own attributes.
 */
export function configSchema(behaviors: readonly Behavior[]): object {
  const address = (what: string) => ({ type: 'string', minLength: 1, description: `${what}: host:port, [v6]:port or :port` })
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: SCHEMA_ID,
    title: 'coquin config',
    description: 'Proxies, their faults ("toxics") and settings for coquin, a chaos and fault-injection proxy. ' +
      'Generated from the behaviors by src/control/config.ts: do not edit.',
    type: 'object',
    additionalProperties: false,
    required: ['proxies'],
    properties: {
      $schema: { type: 'string', description: 'this schema, for editors' },
      proxies: { type: 'array', items: { $ref: '#/definitions/proxy' } },
      partitions: { type: 'array', items: { $ref: '#/definitions/partition' }, description: 'partitions cut when the config is applied' },
      settings: { $ref: '#/definitions/settings' },
    },
    definitions: {
      proxy: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'listen', 'upstream'],
        properties: {
          name: { type: 'string', minLength: 1, pattern: PROXY_NAME.source, description: `unique name, used in the control API's URLs (${PROXY_NAME_RULE})` },
          listen: address('where the proxy listens (port 0: any free port)'),
          upstream: address('where it forwards each connection'),
          enabled: { type: 'boolean', default: true, description: 'false: not listening (clients get ECONNREFUSED)' },
          protocol: { enum: [...PROTOCOLS], default: 'tcp', description: 'http: faults act per request' },
          header_faults: { type: 'boolean', default: false, description: 'http: honour x-coquin-fault-* request headers (Envoy style)' },
          http_fallback: {
            enum: [...HTTP_FALLBACK_POLICIES], default: 'pass',
            description: 'http: a link whose bytes cannot be framed as HTTP passes through unmatched (pass) or is closed (close)',
          },
          tls: { $ref: '#/definitions/tls' },
          toxics: { type: 'array', default: [], items: { $ref: '#/definitions/toxic' }, description: 'faults on this proxy' },
        },
      },
      toxic: {
        type: 'object',
        required: ['type'],
        discriminator: { propertyName: 'type' },
        oneOf: behaviors.map(toxicSchema),
      },
      tls: {
        type: 'object',
        additionalProperties: false,
        description: 'TLS: terminate it from clients (listen) and/or originate it to the upstream (upstream)',
        properties: {
          listen: {
            type: ['object', 'boolean'], additionalProperties: false,
            description: 'terminate TLS from clients; {} or true: a throwaway self-signed certificate (localhost, 127.0.0.1, ::1)',
            properties: {
              cert: { type: 'string', minLength: 1, description: 'certificate chain: a PEM file (relative to this config) or PEM text' },
              key: { type: 'string', minLength: 1, description: 'its private key: a PEM file or PEM text' },
              handshake_timeout: { type: 'integer', minimum: 1, maximum: 3_600_000, description: 'ms a client may take to finish its handshake (default 10000)' },
            },
          },
          upstream: {
            type: ['object', 'boolean'], additionalProperties: false,
            description: 'originate TLS to the upstream; {} or true: verified against Node\'s CAs',
            properties: {
              servername: { type: 'string', minLength: 1, description: 'SNI and the name its certificate must carry (default: the upstream host)' },
              ca: { type: 'string', minLength: 1, description: 'CA certificate(s) to trust: a PEM file or PEM text' },
              insecure: { type: 'boolean', description: 'true: do not verify the upstream\'s certificate' },
            },
          },
        },
      },
      partition: { ...partitionSchema(), description: 'a named cut of the paths through some proxies (src/control/partition.ts)' },
      settings: {
        type: 'object',
        additionalProperties: false,
        properties: {
          seed: { type: 'integer', description: 'seed for every random draw: a run can be replayed' },
          log_level: { enum: [...LOG_LEVELS], description: 'default info' },
          demo: {
            type: 'object',
            additionalProperties: false,
            description: 'built-in demo upstreams to start',
            properties: { echo: address('a TCP echo server'), http: address('an HTTP hello server') },
          },
        },
      },
    },
  }
}

/** The schema as written to configs/coquin.schema.json. */
export function schemaText(behaviors: readonly Behavior[]): string {
  return JSON.stringify(configSchema(behaviors), null, 2) + '\n'
}

export async function writeSchema(file: string, behaviors: readonly Behavior[]): Promise<void> {
  await writeFile(file, schemaText(behaviors))
}

const validators = new WeakMap<readonly Behavior[], ValidateFunction>()
function validator(behaviors: readonly Behavior[]): ValidateFunction {
  let v = validators.get(behaviors)
  if (!v) {
    // One ajv per behavior list: the schema's $id can be registered only once per instance.
    const ajv = createAjv({ documents: true })
    v = ajv.compile(configSchema(behaviors))
    validators.set(behaviors, v)
  }
  return v
}

// Loading ---------------------------------------------------------------------------------------

type Segment = string | number

/** `proxies[0].toxics[1].attributes.latency` */
export function formatPath(path: readonly Segment[]): string {
  let out = ''
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`
    else if (/^[A-Za-z_$][\w$-]*$/.test(s)) out += out ? `.${s}` : s
    else out += `[${JSON.stringify(s)}]`
  }
  return out || '(root)'
}

function pointerSegments(pointer: string): Segment[] {
  if (!pointer) return []
  return pointer.slice(1).split('/').map(s => {
    const key = s.replaceAll('~1', '/').replaceAll('~0', '~')
    return /^(0|[1-9]\d*)$/.test(key) ? Number(key) : key
  })
}

const describe = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? `string ${JSON.stringify(v)}` : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`

/** An issue before sorting: `offset` in the text orders the issues. */
export type Issue = ConfigIssue & { offset: number }

/** Maps a path in checked data to its node, line and column in the YAML text (line 0: no text, as for an API body). */
export class Locator {
  constructor(readonly file: string, readonly doc: Document, readonly lines: LineCounter | null, readonly prefix: Segment[]) {}

  /** The deepest node on the path (a missing or aliased tail falls back to its nearest ancestor). */
  node(path: readonly Segment[]): Node | null {
    const docPath = this.docPath(path)
    for (let n = docPath.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : this.doc.getIn(docPath.slice(0, n), true)
      if (node && typeof node === 'object' && 'range' in node && (node as Node).range) return node as Node
    }
    return null
  }

  /** The key node of `key` in the map at `path`. */
  key(path: readonly Segment[], key: string): Node | null {
    const map = this.node(path)
    if (!isMap(map)) return null
    const pair = map.items.find(p => (isScalar(p.key) ? p.key.value : p.key) === key) as Pair<Node> | undefined
    return pair?.key && (pair.key as Node).range ? pair.key : null
  }

  issue(node: Node | null, path: readonly Segment[], message: string): Issue {
    const offset = node?.range?.[0] ?? 0
    const { line, col } = this.lines ? this.lines.linePos(offset) : { line: 0, col: 0 }
    return { file: this.file, line, column: col, path: formatPath(this.docPath(path)), message, offset }
  }

  /** A path in the checked object ({ proxies: [...] }) → the path in the document (a bare list, for Toxiproxy's format). */
  docPath(path: readonly Segment[]): Segment[] {
    return this.prefix.length && path[0] === this.prefix[0] ? path.slice(1) : [...path]
  }

  /** An issue at the node of `path`, or of its nearest ancestor present in the text. */
  at(path: readonly Segment[], message: string): Issue {
    return this.issue(this.node(path), path, message)
  }
}

export function ajvIssue(loc: Locator, e: ErrorObject, behaviors: readonly Behavior[]): Issue {
  const path = pointerSegments(e.instancePath)
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = p.additionalProperty as string
      return loc.issue(loc.key(path, key) ?? loc.node(path), [...path, key], 'unknown field')
    }
    case 'required': {
      const key = p.missingProperty as string
      return loc.issue(loc.node(path), [...path, key], 'missing required field')
    }
    case 'discriminator': {
      const tag = p.tag as string
      const where = loc.key(path, tag) ? loc.node([...path, tag]) : loc.node(path)
      if (typeof p.tagValue === 'string') {
        return loc.issue(where, [...path, tag], `unknown toxic type ${JSON.stringify(p.tagValue)} (known: ${behaviors.map(b => b.type).join(', ')})`)
      }
      return loc.issue(where, [...path, tag], p.tagValue === undefined ? 'missing required field' : `must be string, not ${describe(p.tagValue)}`)
    }
    case 'type': {
      const s = e.parentSchema as { pattern?: unknown; title?: unknown } | undefined   // a time: "must be a time: …"
      const what = s?.pattern !== undefined && typeof s.title === 'string' ? s.title : String(p.type)
      return loc.issue(loc.node(path), path, `must be ${what}, not ${describe(e.data)}`)
    }
    case 'enum':
      return loc.issue(loc.node(path), path, `must be one of ${(p.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}, not ${describe(e.data)}`)
    case 'const':
      return loc.issue(loc.node(path), path, `must be ${JSON.stringify(p.allowedValue)}`)
    case 'pattern': {
      const title = (e.parentSchema as { title?: unknown } | undefined)?.title
      return loc.issue(loc.node(path), path, `must be ${typeof title === 'string' ? title : `like ${String(p.pattern)}`}, not ${describe(e.data)}`)
    }
    default:
      return loc.issue(loc.node(path), path, e.message ?? 'invalid')
  }
}

/**
 * What ajv cannot say: addresses that do not parse, names and addresses given twice, faults for the
 * other protocol. Runs on the checked data even when ajv found issues, so that every issue is
 * reported at once: each check skips values of the wrong type (ajv reported those).
 */
function crossChecks(loc: Locator, data: unknown, behaviors: readonly Behavior[]): (ConfigIssue & { offset: number })[] {
  const issues: (ConfigIssue & { offset: number })[] = []
  const proxies = (data as { proxies?: unknown } | null)?.proxies
  if (!Array.isArray(proxies)) return issues
  const byType = new Map(behaviors.map(b => [b.type, b]))
  const at = (path: Segment[], message = '') => loc.issue(loc.node(path), path, message)
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined)
  const proxyNames = new Map<string, number>()
  const listens = new Map<string, number>()
  proxies.forEach((p: Record<string, unknown> | null, i) => {
    if (typeof p !== 'object' || p === null) return
    const here: Segment[] = ['proxies', i]
    const name = str(p.name)
    const first = name === undefined ? undefined : proxyNames.get(name)
    if (first !== undefined) {
      issues.push(at([...here, 'name'], `proxy name ${JSON.stringify(name)} given twice (first at line ${at(['proxies', first, 'name']).line})`))
    } else if (name !== undefined) proxyNames.set(name, i)

    for (const field of ['listen', 'upstream'] as const) {
      const value = str(p[field])
      if (!value) continue
      if (field === 'upstream' && /^[a-z]+:\/\//i.test(value)) {
        issues.push(at([...here, field], `give host:port, not a URL: ${JSON.stringify(value)}`))
        continue
      }
      let port: number, host: string
      try {
        ({ host, port } = parseAddress(field, value))
      } catch {
        issues.push(at([...here, field], `not a host:port address: ${JSON.stringify(value)}`))
        continue
      }
      if (field === 'listen' && port !== 0) {
        const other = listens.get(`${host}:${port}`)
        if (other !== undefined) {
          issues.push(at([...here, field], `address already used by ${formatPath(loc.docPath(['proxies', other]))} (line ${at(['proxies', other, field]).line})`))
        } else listens.set(`${host}:${port}`, i)
      }
    }

    issues.push(...tlsChecks(loc, here, p.tls))

    if (!Array.isArray(p.toxics)) return
    const toxicNames = new Map<string, number>()
    p.toxics.forEach((t: Record<string, unknown> | null, j) => {
      if (typeof t !== 'object' || t === null) return
      const tpath: Segment[] = [...here, 'toxics', j]
      const type = str(t.type)
      const tname = str(t.name) || (type && str(t.stream) ? toxicName(undefined, type, str(t.stream)!) : undefined)
      const prev = tname === undefined ? undefined : toxicNames.get(tname)
      if (prev !== undefined) {
        // The name node if there is one, else the toxic: its name is the default `<type>_<stream>`.
        const explicit = t.name !== undefined && t.name !== ''
        issues.push(loc.issue(loc.node(explicit ? [...tpath, 'name'] : tpath), [...tpath, 'name'],
          `toxic name ${JSON.stringify(tname)} given twice in this proxy (first at line ${at([...here, 'toxics', prev]).line})` +
          (explicit ? '' : '; give each a name')))
      } else if (tname !== undefined) toxicNames.set(tname, j)
      const behavior = type === undefined ? undefined : byType.get(type)
      const protocol = str(p.protocol) ?? 'tcp'
      const mismatch = behavior && isProtocol(protocol) ? protocolMismatch(behavior, protocol) : undefined
      if (mismatch) issues.push(at([...tpath, 'type'], mismatch))
    })
  })
  return issues
}

/** TLS: a cert needs its key, and the files must be there (relative to the config's folder). */
function tlsChecks(loc: Locator, here: Segment[], t: unknown): Issue[] {
  if (typeof t !== 'object' || t === null) return []
  const issues: Issue[] = []
  const dir = path.dirname(loc.file)
  const { listen, upstream } = t as Record<string, unknown>
  const files: [Segment[], unknown][] = []
  if (typeof listen === 'object' && listen !== null) {
    const l = listen as Record<string, unknown>
    if ((l.cert === undefined) !== (l.key === undefined)) {
      issues.push(loc.at([...here, 'tls', 'listen'], 'give both cert and key, or neither for a throwaway self-signed certificate'))
    }
    files.push([[...here, 'tls', 'listen', 'cert'], l.cert], [[...here, 'tls', 'listen', 'key'], l.key])
  }
  if (typeof upstream === 'object' && upstream !== null) files.push([[...here, 'tls', 'upstream', 'ca'], (upstream as Record<string, unknown>).ca])
  for (const [at, value] of files) {
    if (typeof value !== 'string' || value === '' || value.includes('-----BEGIN ')) continue
    try {
      accessSync(path.resolve(dir, value), constants.R_OK)
    } catch (err) {
      issues.push(loc.at(at, `cannot read ${path.resolve(dir, value)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`))
    }
  }
  return issues
}

/** TLS file paths in a config are relative to its folder: make them absolute, for the registry. */
function resolveTlsPaths(file: string, p: { tls?: unknown }): void {
  const t = p.tls as { listen?: Record<string, unknown>; upstream?: Record<string, unknown> } | undefined
  if (typeof t !== 'object' || t === null) return
  const dir = path.dirname(path.resolve(file))
  const fix = (o: Record<string, unknown> | undefined, k: string) => {
    const v = o?.[k]
    if (typeof o === 'object' && o !== null && typeof v === 'string' && !v.includes('-----BEGIN ')) o[k] = path.resolve(dir, v)
  }
  fix(t.listen, 'cert'); fix(t.listen, 'key'); fix(t.upstream, 'ca')
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

/** Issues a message lists at most; the error's `issues` holds them all. */
export const MAX_ISSUES_SHOWN = 20

/** Throws one error (ConfigInvalidError unless told) listing every issue, `file:line:column: field: problem` each. */
export function fail(issues: Issue[], E: new (detail: string) => CoquinError = ConfigInvalidError): never {
  const sorted = issues.sort((a, b) => a.offset - b.offset).map(({ offset: _, ...i }) => i)
  const where = (i: ConfigIssue) => (i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file)
  const shown = sorted.slice(0, MAX_ISSUES_SHOWN).map(i => `${where(i)}: ${i.path ? `${i.path}: ` : ''}${i.message}`)
  if (sorted.length > MAX_ISSUES_SHOWN) shown.push(`${where(sorted[MAX_ISSUES_SHOWN]!)}: and ${sorted.length - MAX_ISSUES_SHOWN} more issues from here on`)
  const err = new E(shown.join('\n'))
  throw Object.assign(err, { issues: sorted })
}

export interface CheckOptions {
  /** The compiled schema (with defaults: they are filled in). */
  validate: ValidateFunction
  behaviors: readonly Behavior[]
  /** What the schema cannot say; runs even when the schema found issues, so all are reported at once. */
  cross?: (loc: Locator, data: unknown) => Issue[]
  /** The error thrown (default ConfigInvalidError). */
  error?: new (detail: string) => CoquinError
}

/** Checks a value against a schema and `cross`: every issue at once, each mapped through `loc`. */
export function checkWith(loc: Locator, data: unknown, opts: CheckOptions): void {
  const { validate, behaviors } = opts
  const issues: Issue[] = []
  if (!validate(data)) {
    // A missing `type` is reported by both `required` and the discriminator: keep one line each.
    const seen = new Set<string>()
    for (const i of (validate.errors ?? []).map(e => ajvIssue(loc, e, behaviors))) {
      const key = `${i.offset} ${i.path} ${i.message}`
      if (!seen.has(key)) { seen.add(key); issues.push(i) }
    }
  }
  if (opts.cross) issues.push(...opts.cross(loc, data))
  if (issues.length > 0) fail(issues, opts.error)
}

/**
 * YAML (or JSON) text → its value and a Locator for it; syntax errors and alias bombs are thrown as
 * issues with their line and column. The machinery of configs and scenarios (src/control/scenario.ts).
 */
export function readYaml(file: string, text: string, E: new (detail: string) => CoquinError = ConfigInvalidError): { raw: unknown; doc: Document; lines: LineCounter } {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    fail(doc.errors.map(e => {
      const { line, col } = lines.linePos(e.pos[0])
      return { file, line, column: col, path: '', message: e.message, offset: e.pos[0] }
    }), E)
  }
  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 1000 })
  } catch (err) { // an alias bomb: "Excessive alias count indicates a resource exhaustion attack"
    fail([{ file, line: 1, column: 1, path: '', message: (err as Error).message, offset: 0 }], E)
  }
  return { raw, doc, lines }
}

/** A Locator for a value that came without text (an API body): issues name the field, not a line. */
export function valueLocator(label: string, value: unknown): Locator {
  return new Locator(label, new YamlDocument(value), null, [])
}

/**
 * Reads and checks a config: YAML, or Toxiproxy's JSON config (a top-level list of proxies; coquin
 * also accepts `toxics` in it). Throws ConfigReadError, or one ConfigInvalidError with every issue
 * in its message (one `file:line:column: field: problem` per line) and in `err.issues`.
 */
export async function loadConfig(file: string, behaviors: readonly Behavior[]): Promise<Config> {
  return parseConfig(file, await readConfigText(file), behaviors)
}

/** A config file is read only if it is a regular file of at most this size (a few thousand proxies fit in 1 MiB). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024

/** A config or scenario file's text: a regular file, at most MAX_CONFIG_BYTES, text. Throws ConfigReadError. */
export async function readConfigText(file: string): Promise<string> {
  let text: string
  try {
    text = await readRegularFile(file, MAX_CONFIG_BYTES)
  } catch (err) {
    const code = err instanceof FileReadError ? err.code : ''
    const reason = code === 'ENOENT' ? 'no such file'
      : code === 'EACCES' ? 'permission denied'
      : code === 'EISDIR' ? 'is a directory'
      : code === 'not_regular' ? 'not a regular file'
      : code === 'too_large' ? `too large (${(err as Error).message}; the limit is ${MAX_CONFIG_BYTES / 1024 / 1024} MiB)`
      : (err as Error).message
    throw new ConfigReadError(file, reason).because(err)
  }
  const binary = binaryAt(text)
  if (binary >= 0) throw new ConfigReadError(file, `not a text file (a NUL or invalid UTF-8 at character ${binary})`)
  return text
}

/** Where text read as UTF-8 shows it was not text: a NUL or a replacement character; -1 if nowhere. */
function binaryAt(text: string): number {
  const nul = text.indexOf('\0')
  const bad = text.indexOf('\uFFFD')
  return nul < 0 ? bad : bad < 0 ? nul : Math.min(nul, bad)
}

/** loadConfig on text already read; `file` is only used in messages. */
export function parseConfig(file: string, text: string, behaviors: readonly Behavior[]): Config {
  const { raw, doc, lines } = readYaml(file, text)
  const toxiproxy = Array.isArray(raw)
  const data = toxiproxy ? { proxies: raw } : raw
  const loc = new Locator(file, doc, lines, toxiproxy ? ['proxies'] : [])
  checkWith(loc, data, {
    validate: validator(behaviors), behaviors,
    cross: (loc, data) => [...crossChecks(loc, data, behaviors), ...partitionChecks(loc, data)],
  })
  const checked = data as { proxies: ProxyConfig[]; partitions?: PartitionSpec[]; settings?: Settings; $schema?: string }
  for (const p of checked.proxies) {
    resolveTlsPaths(file, p)
    for (const t of p.toxics) {
      (t as { name: string }).name = toxicName(t.name, t.type, t.stream)
    }
  }
  const partitions = checked.partitions?.map(normalizePartition)
  return deepFreeze({ file, proxies: checked.proxies, ...(partitions ? { partitions } : {}), settings: checked.settings ?? {} })
}

/** Partitions: names given twice, proxies the config does not declare, bad CIDRs and zero times. */
function partitionChecks(loc: Locator, data: unknown): Issue[] {
  const list = (data as { partitions?: unknown } | null)?.partitions
  if (!Array.isArray(list)) return []
  const issues: Issue[] = []
  const proxies = (data as { proxies?: unknown }).proxies
  const declared = new Set(Array.isArray(proxies) ? proxies.map(p => (p as { name?: unknown } | null)?.name) : [])
  const names = new Map<string, number>()
  list.forEach((p: Record<string, unknown> | null, i) => {
    if (typeof p !== 'object' || p === null) return
    const here: Segment[] = ['partitions', i]
    if (typeof p.name === 'string') {
      const first = names.get(p.name)
      if (first !== undefined) issues.push(loc.at([...here, 'name'], `partition name ${JSON.stringify(p.name)} given twice (first at line ${loc.at(['partitions', first, 'name'], '').line})`))
      else names.set(p.name, i)
    }
    if (Array.isArray(p.proxies)) {
      p.proxies.forEach((name, j) => {
        if (typeof name === 'string' && !declared.has(name)) issues.push(loc.at([...here, 'proxies', j], `no proxy named ${JSON.stringify(name)} in this config`))
      })
    }
    for (const problem of partitionProblems(p)) issues.push(loc.at([...here, ...problem.path], problem.message))
  })
  return issues
}

// Applying --------------------------------------------------------------------------------------

/** Deep equality of plain JSON values. */
export const same = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a), kb = Object.keys(b)
  return ka.length === kb.length && ka.every(k => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/**
 * Brings the registry to the config's state, touching only what differs: proxies are created,
 * deleted, updated (a changed protocol recreates the proxy) and their faults added, removed or
 * updated by name (a changed type or stream replaces the fault). Links of an unchanged proxy, and
 * under an unchanged fault, are left alone; so are unchanged partitions. Every spec is checked first; then each proxy is brought
 * up to date in turn and, if any fails (a port in use), the others are still applied and the first
 * error is thrown with `failures: { proxy, error }[]`.
 */
export async function applyConfig(registry: Registry, config: Config): Promise<void> {
  const wanted = new Map(config.proxies.map(p => [p.name, p]))
  for (const p of config.proxies) registry.check(p, ` at proxy ${p.name}`)
  const failures: { proxy: string; error: unknown }[] = []
  const step = async (proxy: string, fn: () => Promise<unknown> | void) => {
    try { await fn() } catch (error) { failures.push({ proxy, error }) }
  }

  // Deletions first: they free addresses that new or moved proxies may take.
  for (const name of [...registry.proxies.keys()]) {
    if (!wanted.has(name)) await step(name, () => registry.delete(name))
  }
  for (const spec of config.proxies) {
    const proxy = registry.proxies.get(spec.name)
    if (proxy && (proxy.protocol !== spec.protocol || !same(proxy.tls?.spec, registry.check(spec).tls))) {
      await step(spec.name, async () => { await registry.delete(spec.name); await registry.create(spec) })
      continue
    }
    if (!proxy) {
      await step(spec.name, () => registry.create(spec))
      continue
    }
    await step(spec.name, async () => {
      if (proxy.listen !== spec.listen || proxy.upstream !== spec.upstream || proxy.enabled !== spec.enabled) {
        await proxy.update({ listen: spec.listen, upstream: spec.upstream, enabled: spec.enabled })
      }
      proxy.headerFaults = spec.header_faults
      proxy.httpFallback = spec.http_fallback
      const next = new Map(spec.toxics.map(t => [t.name, registry.makeFault(t)]))
      for (const f of [...proxy.faults]) {
        const n = next.get(f.name)
        if (!n || n.type !== f.type || n.stream !== f.stream) proxy.removeFault(f.name)
      }
      for (const n of next.values()) {
        const f = proxy.faults.find(x => x.name === n.name)
        if (!f) proxy.addFault(n)
        else if (f.toxicity !== n.toxicity || !same(f.attributes, n.attributes)) proxy.updateFault(n.name, n.attributes, n.toxicity)
      }
    })
  }
  // Partitions: one not in the config is healed, a changed one cut anew, a missing one cut (a proxy
  // that failed to start is cut when it is created). One that healed by its duration is cut again.
  const cuts = new Map((config.partitions ?? []).map(p => [p.name, p]))
  for (const p of registry.partitions.list()) {
    const w = cuts.get(p.name)
    if (!w || !same(p.config, w)) registry.partitions.heal(p.name)
  }
  for (const w of cuts.values()) {
    if (!registry.partitions.has(w.name)) await step(`partition:${w.name}`, () => { registry.partitions.cut(w, { allowMissing: true }) })
  }
  if (failures.length > 0) throw Object.assign(failures[0]!.error as Error, { failures })
}
