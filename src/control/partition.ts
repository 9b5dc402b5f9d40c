// Partitions: named cuts of the paths through a set of proxies, optionally only for links from some
// client addresses, one way or both. A partition is a fault the user never sees in a toxics list: one
// internal Fault per partition, put on each proxy it names (`proxy.addCut`), so that it rides the
// same machinery as faults — decided for open links at once and for new links at accept, removed
// live — and a proxy with no fault and no partition keeps its fast path untouched.
//   blackhole  a stage that drops the bytes of the cut direction(s) and holds back their FIN; healing
//              removes it, so surviving links flow again (bytes sent meanwhile are lost).
//   hold       a stage that holds the bytes of the cut direction(s) (bounded by the high-water mark, with
//              backpressure) and their FIN; healing delivers them, so a request in flight completes late.
//   reset      matching open links are reset (RST both sides) when the cut starts; new connections are
//              reset at accept, before any upstream connection.
//   refuse     new connects are refused (as the `refuse` behavior): for all clients the proxy's listener closes
//              while cut (ECONNREFUSED, as a closed port); with `clients`, they are accepted and reset. Open
//              links are left alone.
// `direction` matters for blackhole and hold only. `duration` heals (and forgets) the partition; `flap`
// alternates cut (down ms) and healed (up ms), starting cut, until the partition is healed.
import net from 'node:net'
import { pacedStage, Type, type Behavior } from '../faults/behavior.js'
import type { Clock, Timer } from '../core/clock.js'
import { ajv, Fault, formatAjvErrors } from '../faults/fault.js'
import type { Logger } from '../core/log.js'
import type { Proxy } from '../datapath/proxy.js'
import { InvalidRequestError, PartitionExistsError, PartitionNotFoundError, ProxyNotFoundError } from '../core/errors.js'

export type PartitionMode = 'blackhole' | 'hold' | 'reset' | 'refuse'
export type PartitionDirection = 'both' | 'upstream' | 'downstream'

/** A partition as given (API body, config, scenario step): times in ms, or strings like `500ms`, `10s`, `1m`. */
export interface PartitionSpec {
  name: string
  proxies: string[]
  direction?: PartitionDirection
  mode?: PartitionMode
  /** Client addresses or CIDRs (IPv4 or IPv6); IPv4-mapped IPv6 clients match IPv4 ranges. */
  clients?: string[]
  duration?: number | string
  flap?: { up: number | string; down: number | string }
}

/** A checked partition: defaults filled in, times in ms. */
export interface PartitionConfig {
  readonly name: string
  readonly proxies: readonly string[]
  readonly direction: PartitionDirection
  readonly mode: PartitionMode
  readonly clients?: readonly string[]
  readonly duration?: number
  readonly flap?: { readonly up: number; readonly down: number }
}

// Times ------------------------------------------------------------------------------------------

export const TIME_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)?\\s*$'
const TIME_RE = new RegExp(TIME_PATTERN)
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
/** The longest time a timer takes (Node clamps anything longer to 1 ms). */
export const MAX_TIME_MS = 2 ** 31 - 1

/** Milliseconds from a number (ms) or a string like `500ms`, `10s`, `1.5m`, `2h`, `250`; undefined if neither. */
export function parseTime(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined
  if (typeof v !== 'string' || !TIME_RE.test(v)) return undefined
  const m = /^\s*([\d.]+)\s*([a-z]*)\s*$/.exec(v)!
  return Math.round(Number(m[1]) * UNIT_MS[m[2] || 'ms']!)
}

/** `1500` → `1.5s`, `60000` → `1m`, `250` → `250ms`. */
export function formatTime(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000 || ms % 60_000 !== 0) return `${+(ms / 1000).toFixed(1)}s`
  return `${ms / 60_000}m`
}

/** JSON Schema of a time: configs, partitions and scenarios share it. */
export function timeSchema(description: string): object {
  return {
    type: ['number', 'string'], minimum: 0, pattern: TIME_PATTERN,
    title: 'a time: milliseconds, or a string like 500ms, 10s, 1m', description,
  }
}

// Schema and checks ------------------------------------------------------------------------------

/** JSON Schema (draft-07) of one partition, used by the config schema, scenarios and the API. */
export function partitionSchema(): object {
  const names = (description: string) => ({ type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description })
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'proxies'],
    properties: {
      name: { type: 'string', minLength: 1, description: 'unique name, used to heal it' },
      proxies: names('the proxies whose paths are cut (the way A reaches B is the proxy in front of B that A uses)'),
      direction: {
        enum: ['both', 'upstream', 'downstream'], default: 'both',
        description: 'blackhole and hold only: upstream = client → server, downstream = server → client',
      },
      mode: {
        enum: ['blackhole', 'hold', 'reset', 'refuse'], default: 'blackhole',
        description: 'blackhole: drop bytes, hold FINs, heal restores flow (bytes sent meanwhile are lost); ' +
          'hold: hold bytes (bounded, with backpressure) and FINs, heal delivers them; reset: RST open links and new connects; ' +
          'refuse: refuse new connects (ECONNREFUSED; with clients: accept and RST), open links untouched',
      },
      clients: names('cut only links from these client addresses or CIDRs (127.0.0.2, 10.0.0.0/8, ::1/128); default all'),
      duration: timeSchema('heal automatically after this long; default: until healed'),
      flap: {
        type: 'object',
        additionalProperties: false,
        required: ['up', 'down'],
        description: 'alternate cut (down) and healed (up), starting cut, until healed',
        properties: { up: timeSchema('how long each healed phase lasts'), down: timeSchema('how long each cut phase lasts') },
      },
    },
  }
}

/** Compiles a client list into one test; throws TypeError naming the bad entry. */
export function clientMatcher(list: readonly string[]): (address: string) => boolean {
  const bl = new net.BlockList()
  for (const entry of list) {
    const [addr = '', bits, extra] = entry.trim().split('/')
    const family = net.isIP(addr)
    if (family === 0 || extra !== undefined) throw new TypeError(`${entry} is not an IP address or CIDR`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) { bl.addAddress(addr, type); continue }
    const prefix = Number(bits)
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new TypeError(`${entry} has a bad prefix length`)
    bl.addSubnet(addr, prefix, type)
  }
  // BlockList matches an IPv4-mapped IPv6 address (::ffff:127.0.0.2, from a dual-stack listener) against IPv4 rules.
  return address => {
    const family = net.isIP(address)
    return family !== 0 && bl.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }
}

export interface Problem { path: (string | number)[]; message: string }

/**
 * What the schema cannot say, on data the schema accepted where it looks: bad CIDRs, zero-length
 * times. Skips values of the wrong type (the schema reports those). Paths are relative to the partition.
 */
export function partitionProblems(p: unknown): Problem[] {
  if (typeof p !== 'object' || p === null) return []
  const o = p as Record<string, unknown>
  const out: Problem[] = []
  if (Array.isArray(o.clients)) {
    o.clients.forEach((c, i) => {
      if (typeof c !== 'string') return
      try { clientMatcher([c]) } catch (err) { out.push({ path: ['clients', i], message: (err as Error).message }) }
    })
  }
  const positive = (path: (string | number)[], v: unknown) => {
    const ms = parseTime(v)
    if (ms === 0) out.push({ path, message: 'must be more than 0' })
    else if (ms !== undefined && ms > MAX_TIME_MS) out.push({ path, message: `must be at most ${MAX_TIME_MS} ms` })
  }
  positive(['duration'], o.duration)
  if (typeof o.flap === 'object' && o.flap !== null) {
    positive(['flap', 'up'], (o.flap as Record<string, unknown>).up)
    positive(['flap', 'down'], (o.flap as Record<string, unknown>).down)
  }
  return out
}

/** A partition the schema and partitionProblems accepted, as a PartitionConfig (times in ms). */
export function normalizePartition(p: PartitionSpec): PartitionConfig {
  const c: { -readonly [K in keyof PartitionConfig]: PartitionConfig[K] } = {
    name: p.name, proxies: [...p.proxies], direction: p.direction ?? 'both', mode: p.mode ?? 'blackhole',
  }
  if (p.clients !== undefined) c.clients = [...p.clients]
  if (p.duration !== undefined) c.duration = parseTime(p.duration)!
  if (p.flap !== undefined) c.flap = { up: parseTime(p.flap.up)!, down: parseTime(p.flap.down)! }
  return c
}

let validate: ReturnType<typeof ajv.compile> | undefined
const fmt = (path: (string | number)[]) => path.map(s => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').replace(/^\./, '')

/** Checks an API body (or a scenario step's, already validated) and normalizes it; InvalidRequestError on any issue. */
export function checkPartition(spec: unknown): PartitionConfig {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new InvalidRequestError('partition must be an object')
  const copy = structuredClone(spec)
  validate ??= ajv.compile(partitionSchema())
  if (!validate(copy)) {
    const errors = (validate.errors ?? []).map(e => (e.keyword === 'pattern' ? { ...e, message: 'must be a time: milliseconds, or like 500ms, 10s, 1m' } : e))
    throw new InvalidRequestError(`invalid partition: ${formatAjvErrors(errors)}`)
  }
  const problems = partitionProblems(copy)
  if (problems.length > 0) throw new InvalidRequestError(`invalid partition: ${problems.map(p => `${fmt(p.path)}: ${p.message}`).join('; ')}`)
  return normalizePartition(copy as PartitionSpec)
}

// The cut ----------------------------------------------------------------------------------------

/** The internal behaviors: never in the catalog, never named by a user. */
const blackhole: Behavior = {
  type: 'partition',
  summary: 'a partition: drop every byte, hold back the FIN',
  attributes: Type.Object({}),
  stage: (_a, link) => ({
    held: 0,
    write(chunk) { link.dropped(chunk.length) },
    end() { /* held back: passed on when the partition heals */ },
    destroy() {},
  }),
}
/** `hold`: hold the bytes and the FIN, and hand them on when the partition heals (a blip that heals). */
const hold: Behavior = {
  type: 'partition',
  summary: 'a partition: hold every byte and the FIN until healed',
  attributes: Type.Object({}),
  stage: (_a, link, next) => pacedStage(link, next, { size: () => 1, cost: () => 0, catchUpMs: 0, stalled: true, action: 'held' }),
}
/** `refuse`: new connects are refused (the listener closes while the partition covers every client). */
const refuse: Behavior = {
  type: 'partition',
  summary: 'a partition: refuse new connections',
  attributes: Type.Object({}),
  connect: () => ({ action: 'refuse' }),
}
/** `reset`: new connections are accepted and reset at once. */
const resetNew: Behavior = {
  type: 'partition',
  summary: 'a partition: reset new connections at accept',
  attributes: Type.Object({}),
  connect: () => ({ action: 'reset' }),
}

/** What partitions need from the registry. */
export interface PartitionHost {
  readonly proxies: ReadonlyMap<string, Proxy>
  readonly clock: Clock
  readonly log: Logger
}

export class Partition {
  readonly fault: Fault
  readonly createdAt: number
  #cut = false
  #stopped = false
  #flapTimer: Timer | undefined
  #flapAt = 0
  #endTimer: Timer | undefined
  #endAt = 0

  constructor(readonly config: PartitionConfig, readonly host: PartitionHost, onEnd: () => void) {
    const behavior = { blackhole, hold, reset: resetNew, refuse }[config.mode]
    this.fault = new Fault(`partition:${config.name}`, 'partition', config.direction, 1, Object.freeze({ after: 0, count: 0 }), behavior)
    if (config.clients) this.fault.only = clientMatcher(config.clients)
    this.createdAt = host.clock.now()
    this.#down()
    if (config.flap) this.#flap(config.flap.down, () => this.#up())
    if (config.duration !== undefined) {
      this.#endAt = this.createdAt + config.duration
      this.#endTimer = host.clock.setTimeout(onEnd, config.duration)
    }
  }

  get name(): string { return this.config.name }
  /** Cut now (false during a flap's healed phase). */
  get isCut(): boolean { return this.#cut }

  /** A proxy was created (or re-created) under a name this partition lists: cut it too while cut. */
  attach(proxy: Proxy): void {
    if (this.#cut && this.config.proxies.includes(proxy.name)) this.#cutProxy(proxy)
  }

  /** Heal for good: every timer cancelled, every proxy's paths restored. Idempotent. */
  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#flapTimer?.cancel()
    this.#endTimer?.cancel()
    this.#up()
  }

  #flap(ms: number, then: () => void): void {
    this.#flapAt = this.host.clock.now() + ms
    this.#flapTimer = this.host.clock.setTimeout(() => {
      if (this.#stopped) return
      then()
      const f = this.config.flap!
      this.#flap(this.#cut ? f.down : f.up, this.#cut ? () => this.#up() : () => this.#down())
    }, ms)
  }

  #down(): void {
    this.#cut = true
    for (const name of this.config.proxies) {
      const p = this.host.proxies.get(name)
      if (p) this.#cutProxy(p)
    }
  }

  #up(): void {
    if (!this.#cut) return
    this.#cut = false
    for (const name of this.config.proxies) this.host.proxies.get(name)?.removeCut(this.fault)
  }

  #cutProxy(p: Proxy): void {
    p.addCut(this.fault)
    if (this.config.mode !== 'reset') return
    const only = this.fault.only
    for (const link of [...p.links]) {
      if (only === undefined || only(link.client.remoteAddress ?? '')) { link.actedOn(this.fault, 'reset'); link.reset('partition') }
    }
  }

  toJSON() {
    const now = this.host.clock.now()
    return {
      ...this.config,
      state: this.#cut ? 'cut' as const : 'healed' as const,
      ...(this.config.flap ? { next_flip_ms: Math.max(0, Math.round(this.#flapAt - now)) } : {}),
      ...(this.config.duration !== undefined ? { remaining_ms: Math.max(0, Math.round(this.#endAt - now)) } : {}),
    }
  }
}

export type PartitionInfo = ReturnType<Partition['toJSON']>

/** Every partition of one registry, by name. */
export class Partitions {
  readonly #all = new Map<string, Partition>()
  constructor(readonly host: PartitionHost) {}

  get size(): number { return this.#all.size }
  has(name: string): boolean { return this.#all.has(name) }
  get(name: string): Partition {
    const p = this.#all.get(name)
    if (!p) throw new PartitionNotFoundError(name)
    return p
  }
  list(): Partition[] { return [...this.#all.values()] }

  /**
   * Cuts a partition from an API body or a checked config. Throws InvalidRequestError (400),
   * PartitionExistsError (409), or ProxyNotFoundError (404) for a proxy that does not exist — unless
   * `allowMissing` (configs: a proxy that failed to start is cut when it is created).
   */
  cut(spec: unknown, opts: { allowMissing?: boolean } = {}): Partition {
    const config = checkPartition(spec)
    if (this.#all.has(config.name)) throw new PartitionExistsError(config.name)
    if (!opts.allowMissing) {
      const missing = config.proxies.find(n => !this.host.proxies.has(n))
      if (missing !== undefined) throw Object.assign(new ProxyNotFoundError(), { message: `proxy not found: ${missing}` })
    }
    const p: Partition = new Partition(config, this.host, () => {
      if (this.#all.get(config.name) !== p) return
      this.#all.delete(config.name)
      p.stop()
      this.host.log.info({ partition: config.name, after: config.duration }, 'partition healed')
    })
    this.#all.set(config.name, p)
    this.host.log.info({ partition: config.name, proxies: config.proxies, mode: config.mode, direction: config.direction,
      clients: config.clients, duration: config.duration, flap: config.flap }, 'partition cut')
    return p
  }

  heal(name: string): void {
    const p = this.get(name)
    this.#all.delete(name)
    p.stop()
    this.host.log.info({ partition: name }, 'partition healed')
  }

  /** A proxy was created: the partitions that list it cut it too. */
  attach(proxy: Proxy): void {
    for (const p of this.#all.values()) p.attach(proxy)
  }

  healAll(): void {
    for (const name of [...this.#all.keys()]) this.heal(name)
  }
}
