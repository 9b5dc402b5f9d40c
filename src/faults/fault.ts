// A fault: a behavior configured on a proxy (Toxiproxy's "toxic"). Specs from the API, configs and
// the CLI are checked here against each behavior's schema, with defaults filled in, then frozen.
import type { ErrorObject, ValidateFunction } from 'ajv'
import { createAjv } from '../spec/ajv.js'
import { Type, type TObject } from '@sinclair/typebox'
import { MAX_COUNT, type Behavior } from './behavior.js'
import type { Random } from '../core/random.js'
import { CoquinError, InvalidAttributesError, InvalidStreamError, InvalidToxicTypeError, InvalidRequestError } from '../core/errors.js'

export type FaultStream = 'upstream' | 'downstream' | 'both'

export interface FaultSpec {
  name?: string
  type?: string
  stream?: string
  toxicity?: number
  attributes?: Record<string, unknown>
}

export { MAX_COUNT }

/** Attributes the core adds to every behavior: transient faults, Vaurien style. */
const common = {
  after: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'skip the first N links (HTTP: requests) this fault would hit' }),
  count: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'stop after hitting N links (HTTP: requests); 0 = no limit' }),
}

/** The validator for attributes and partitions (src/spec/ajv.ts: the rules every schema is read with). */
export const ajv = createAjv()

export function attributeSchema(b: Behavior): TObject {
  return Type.Object({ ...b.attributes.properties, ...common }, { additionalProperties: false })
}

export function formatAjvErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map(e => {
    const where = e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : ''
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty
      return `${where ? where + '.' : ''}${extra}: unknown field`
    }
    return `${where || '(root)'}: ${e.message ?? 'invalid'}`
  }).join('; ')
}

export class Catalog {
  readonly #byType = new Map<string, { behavior: Behavior; validate: ValidateFunction }>()
  constructor(readonly behaviors: readonly Behavior[]) {
    for (const b of behaviors) {
      if (this.#byType.has(b.type)) throw new TypeError(`behavior ${b.type} registered twice`)
      this.#byType.set(b.type, { behavior: b, validate: ajv.compile(attributeSchema(b)) })
    }
  }
  get(type: string): Behavior | undefined { return this.#byType.get(type)?.behavior }

  #unknownType(type: unknown): CoquinError {
    const what = type === undefined ? 'no type given' : `unknown type ${JSON.stringify(type)}`
    return new InvalidToxicTypeError().withDetail(`${what}; the types are ${[...this.#byType.keys()].join(', ')} (see coquin types)`)
  }

  /** Checks attributes (a fresh object, defaults filled in) or throws InvalidAttributesError. */
  attributes(type: string, attrs: unknown): Record<string, unknown> {
    const entry = this.#byType.get(type)
    if (!entry) throw this.#unknownType(type)
    if (attrs === undefined || attrs === null) attrs = {}
    if (typeof attrs !== 'object' || Array.isArray(attrs)) throw new InvalidAttributesError('attributes must be an object')
    const copy = structuredClone(attrs) as Record<string, unknown>
    if (!entry.validate(copy)) throw new InvalidAttributesError(formatAjvErrors(entry.validate.errors))
    const problem = entry.behavior.validate?.(copy)
    if (problem !== undefined) throw new InvalidAttributesError(problem)
    return copy
  }

  /** Normalises a full spec: Toxiproxy's defaults (downstream, toxicity 1, name `<type>_<stream>`). */
  normalize(spec: FaultSpec): { name: string; type: string; stream: FaultStream; toxicity: number; attributes: Record<string, unknown> } {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new InvalidRequestError('toxic must be an object')
    const type = spec.type
    if (typeof type !== 'string' || !this.#byType.has(type)) throw this.#unknownType(type)
    const stream = parseStream(spec.stream)
    const toxicity = parseToxicity(spec.toxicity)
    if (spec.name !== undefined && spec.name !== null && typeof spec.name !== 'string') throw new InvalidRequestError('name must be a string')
    const name = toxicName(spec.name, type, stream)
    return { name, type, stream, toxicity, attributes: this.attributes(type, spec.attributes) }
  }
}

/**
 * A toxic's name: the one given, or Toxiproxy's default `<type>_<stream>` when none is. `""` means none:
 * Toxiproxy's Go client and toxiproxy-cli send `"name": ""` when no name is given, and Toxiproxy names the
 * toxic then. The one place this rule lives (API, populate, configs, scenarios).
 */
export function toxicName(name: unknown, type: string, stream: string): string {
  return typeof name === 'string' && name !== '' ? name : `${type}_${stream}`
}

export function parseStream(s: unknown): FaultStream {
  if (s === undefined || s === null || s === '') return 'downstream'
  const v = typeof s === 'string' ? s.toLowerCase() : ''
  if (v === 'upstream' || v === 'downstream' || v === 'both') return v
  throw new InvalidStreamError()
}

export function parseToxicity(t: unknown): number {
  if (t === undefined || t === null) return 1
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 1) {
    throw new InvalidRequestError('toxicity must be a number from 0 to 1')
  }
  return t
}

export class Fault {
  /** Links (HTTP: requests) this fault was drawn for, and how many it hit: for after/count. */
  seen = 0
  hits = 0
  /** Per-fault state of HTTP behaviors (token buckets…), from `behavior.init`; shared by all links. */
  state: unknown
  /** Limits the fault to links from some client addresses (a partition's `clients`): checked before the draw. */
  only: ((clientAddress: string) => boolean) | undefined = undefined
  constructor(
    readonly name: string,
    readonly type: string,
    readonly stream: FaultStream,
    public toxicity: number,
    public attributes: Readonly<Record<string, unknown>>,
    readonly behavior: Behavior,
  ) {
    this.state = behavior.init?.(attributes)
  }

  /** Whether this fault hits one more link: after/count, then one toxicity draw. 0 never hits. */
  decide(random: Random): boolean {
    if (this.toxicity <= 0) return false
    const n = this.seen++
    if (n < (this.attributes.after as number)) return false
    const count = this.attributes.count as number
    if (count > 0 && this.hits >= count) return false
    if (this.toxicity < 1 && random() >= this.toxicity) return false
    this.hits++
    return true
  }

  appliesTo(stream: 'upstream' | 'downstream'): boolean {
    return this.stream === 'both' || this.stream === stream
  }

  toJSON() {
    return { attributes: this.attributes, name: this.name, type: this.type, stream: this.stream, toxicity: this.toxicity }
  }
}
