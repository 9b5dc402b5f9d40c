// Scenarios: a timeline in YAML — at t=…, add/update/remove faults, cut/heal partitions, disable/enable
// proxies — checked like a config (one JSON Schema, every issue mapped to file:line:column) and run
// against a registry on its clock. Stopping a scenario (DELETE /scenarios/{id}, Ctrl-C in
// `coquin scenario run`), or a failed step, undoes what it applied: each fault, partition and
// enabled state it touched is brought back to what it was before its first touch. A scenario that
// runs to its end leaves its last state in place (write the steps that clean up). `POST /reset`
// cancels running scenarios without undoing (the reset has cleared everything).
//
//   name: lb-flap
//   repeat: 2                       # passes over the timeline (default 1)
//   duration: 20s                   # length of one pass (default: the last step's `at`)
//   steps:
//     - at: 0s
//       toxic: { proxy: api, add: { name: slow, type: latency, attributes: { latency: 200 } } }
//     - at: 5s
//       partition: { cut: { name: db-cut, proxies: [db], mode: blackhole } }
//     - at: 15s
//       partition: { heal: db-cut }
//     - at: 20s
//       toxic: { proxy: api, remove: slow }
//     - after: { step: 5, delay: 1s }   # instead of `at`: 1 s after step 5 (or a step's `name`) ran
//       proxy: { name: api, enabled: true }
import { basename, extname } from 'node:path'
import type { ValidateFunction } from 'ajv'
import { createAjv } from '../spec/ajv.js'
import type { Behavior } from '../faults/behavior.js'
import type { Timer } from '../core/clock.js'
import { checkWith, configSchema, Locator, readConfigText, readYaml, same, valueLocator, type Issue } from './config.js'
import { toxicName, type FaultStream } from '../faults/fault.js'
import { formatTime, MAX_TIME_MS, parseTime, partitionProblems, timeSchema, type PartitionConfig, type PartitionSpec } from './partition.js'
import type { Registry } from './registry.js'
import { ConfigReadError, ScenarioInvalidError, ScenarioNotFoundError } from '../core/errors.js'

export const SCENARIO_SCHEMA_ID = 'urn:coquin:scenario'

export interface ToxicAdd {
  readonly name: string
  readonly type: string
  readonly stream: FaultStream
  readonly toxicity: number
  readonly attributes: Readonly<Record<string, unknown>>
}

export interface ScenarioStep {
  /** Milliseconds from the start of its pass (for an `after` step: its referent's time plus the delay). */
  readonly at: number
  /** What `after` steps may name it by. */
  readonly name?: string
  /** Given instead of `at`: `delay` ms (default 0) after the step `step` (1-based file position, or a name) ran. */
  readonly after?: { readonly step: number | string; readonly delay: number }
  readonly toxic?: {
    readonly proxy: string
    readonly add?: ToxicAdd
    /** Attributes merge into the fault's; toxicity replaces it. */
    readonly update?: { readonly name: string; readonly attributes?: Readonly<Record<string, unknown>>; readonly toxicity?: number }
    readonly remove?: string
  }
  readonly partition?: { readonly cut?: PartitionSpec; readonly heal?: string }
  readonly proxy?: { readonly name: string; readonly enabled: boolean }
}

/** A checked scenario: defaults filled in, times in ms, steps in time order (file order within a time). */
export interface Scenario {
  readonly name: string
  readonly description?: string
  readonly repeat: number
  /** Length of one pass, ms. */
  readonly duration: number
  readonly steps: readonly ScenarioStep[]
}

// Schema and checks ------------------------------------------------------------------------------

/** The JSON Schema (draft-07) of a scenario: toxics and partitions as in a config. */
export function scenarioSchema(behaviors: readonly Behavior[]): object {
  const config = configSchema(behaviors) as { definitions: { toxic: object; partition: object } }
  const name = (description: string) => ({ type: 'string', minLength: 1, description })
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: SCENARIO_SCHEMA_ID,
    title: 'coquin scenario',
    description: 'A timeline of faults, partitions and proxy states, run by `coquin scenario run FILE` or POST /scenarios.',
    type: 'object',
    additionalProperties: false,
    required: ['steps'],
    properties: {
      $schema: { type: 'string', description: 'this schema, for editors' },
      name: name('shown in progress and listings; default: the file name'),
      description: { type: 'string' },
      repeat: { type: 'integer', minimum: 1, default: 1, description: 'passes over the timeline' },
      duration: timeSchema("length of one pass; default: the last step's `at`"),
      steps: { type: 'array', minItems: 1, items: { $ref: '#/definitions/step' } },
    },
    definitions: {
      step: {
        type: 'object',
        additionalProperties: false,
        description: 'one of toxic, partition or proxy, at a time from the start of the pass (`at`) or after another step (`after`)',
        properties: {
          at: timeSchema('when, from the start of the pass'),
          name: name('for `after: { step: NAME }` in other steps'),
          after: {
            type: 'object',
            additionalProperties: false,
            required: ['step'],
            description: 'instead of `at`: run `delay` after another step ran',
            properties: {
              step: { type: ['integer', 'string'], minimum: 1, minLength: 1, description: "the step: its 1-based position in the file, or its `name`" },
              delay: timeSchema('how long after it (default 0)'),
            },
          },
          toxic: {
            type: 'object',
            additionalProperties: false,
            required: ['proxy'],
            description: 'one of add, update or remove, on a proxy',
            properties: {
              proxy: name('the proxy'),
              add: { $ref: '#/definitions/toxic' },
              update: {
                type: 'object',
                additionalProperties: false,
                required: ['name'],
                properties: {
                  name: name('the toxic'),
                  toxicity: { type: 'number', minimum: 0, maximum: 1 },
                  attributes: { type: 'object', description: 'merged into the current attributes' },
                },
              },
              remove: name('the toxic to remove'),
            },
          },
          partition: {
            type: 'object',
            additionalProperties: false,
            description: 'one of cut or heal',
            properties: { cut: { $ref: '#/definitions/partition' }, heal: name('the partition to heal') },
          },
          proxy: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'enabled'],
            properties: { name: name('the proxy'), enabled: { type: 'boolean', description: 'false: stop listening, end its links' } },
          },
        },
      },
      toxic: config.definitions.toxic,
      partition: config.definitions.partition,
    },
  }
}

const validators = new WeakMap<readonly Behavior[], ValidateFunction>()
function validator(behaviors: readonly Behavior[]): ValidateFunction {
  let v = validators.get(behaviors)
  if (!v) {
    const ajv = createAjv({ documents: true })
    v = ajv.compile(scenarioSchema(behaviors))
    validators.set(behaviors, v)
  }
  return v
}

interface StepTimes {
  /** Each step's time in its pass (undefined where it cannot be known: a bad time, reference or cycle). */
  readonly times: (number | undefined)[]
  /** Tie-breaks for steps at the same time: file order, but a step always after the one it follows. */
  readonly seq: number[]
  readonly problems: { readonly path: (string | number)[]; readonly message: string }[]
}

/** Resolves `at` and `after` to times in the pass: `after` follows its reference (by 1-based position or name). */
function stepTimes(steps: readonly unknown[]): StepTimes {
  const problems: { path: (string | number)[]; message: string }[] = []
  const raw = steps.map(s => (typeof s === 'object' && s !== null && !Array.isArray(s) ? s as Record<string, unknown> : {}))
  const names = new Map<string, number>()
  raw.forEach((s, i) => {
    if (typeof s.name !== 'string') return
    const first = names.get(s.name)
    if (first !== undefined) problems.push({ path: ['steps', i, 'name'], message: `${s.name} is also the name of steps[${first}]` })
    else names.set(s.name, i)
  })
  // The index each `after` step follows (undefined: none, or a bad reference).
  const target = raw.map((s, i): number | undefined => {
    const after = s.after as { step?: unknown } | undefined
    if (typeof after !== 'object' || after === null || s.at !== undefined) return undefined
    const ref = after.step
    let j: number | undefined
    if (typeof ref === 'number' && Number.isInteger(ref) && ref >= 1) {
      if (ref > raw.length) problems.push({ path: ['steps', i, 'after', 'step'], message: `no step ${ref}: there are ${raw.length}` })
      else j = ref - 1
    } else if (typeof ref === 'string' && ref.length > 0) {
      j = names.get(ref)
      if (j === undefined) problems.push({ path: ['steps', i, 'after', 'step'], message: `no step is named ${ref}` })
    }
    if (j === i) {
      problems.push({ path: ['steps', i, 'after', 'step'], message: 'a step cannot run after itself' })
      return undefined
    }
    return j
  })
  const times: (number | undefined)[] = []
  const seq: number[] = []
  const cyclic = new Set<number>()
  for (let i = 0; i < raw.length; i++) {
    // Walk the chain of references from i to a step given `at` (or a bad one, or back to i: a cycle).
    const chain = [i]
    for (let j = target[i]; j !== undefined; j = target[j]) {
      if (chain.includes(j)) {
        if (j === i) {
          cyclic.add(i)
          problems.push({ path: ['steps', i, 'after', 'step'], message: `a cycle: ${[...chain, i].map(k => `steps[${k}]`).join(' runs after ')}` })
        }
        break
      }
      chain.push(j)
    }
  }
  const resolve = (i: number, depth = 0): void => {
    if (i in seq || depth > raw.length) return
    const s = raw[i]!
    const j = target[i]
    if (j === undefined || cyclic.has(i)) {
      times[i] = s.after !== undefined && s.at === undefined ? undefined : parseTime(s.at)
      seq[i] = i
      return
    }
    resolve(j, depth + 1)
    const delay = (s.after as { delay?: unknown }).delay
    const d = delay === undefined ? 0 : parseTime(delay)
    const base = times[j]
    times[i] = base === undefined || d === undefined ? undefined : base + d
    seq[i] = Math.max(i, (seq[j] ?? j) + 0.5)
  }
  for (let i = 0; i < raw.length; i++) resolve(i)
  return { times, seq, problems }
}

/**
 * What the schema cannot say: one action per step, one operation per action, `at` or `after` and
 * references that exist without a cycle, bad CIDRs, steps after `duration`.
 */
function crossChecks(loc: Locator, data: unknown): Issue[] {
  const issues: Issue[] = []
  const o = data as { steps?: unknown; duration?: unknown } | null
  if (typeof o !== 'object' || o === null || !Array.isArray(o.steps)) return issues
  const exactlyOne = (path: (string | number)[], v: Record<string, unknown>, keys: string[]) => {
    const given = keys.filter(k => v[k] !== undefined)
    if (given.length !== 1) issues.push(loc.at(path, given.length === 0 ? `give one of ${keys.join(', ')}` : `give only one of ${given.join(', ')}`))
    return given.length === 1 ? given[0] : undefined
  }
  const { times, problems } = stepTimes(o.steps)
  for (const p of problems) issues.push(loc.at(p.path, p.message))
  let last = 0
  o.steps.forEach((s: Record<string, unknown> | null, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) return
    const here = ['steps', i]
    const when = exactlyOne(here, s, ['at', 'after'])
    const at = when ? times[i] : undefined
    if (at !== undefined) {
      if (at > MAX_TIME_MS) issues.push(loc.at([...here, when!], when === 'at' ? `must be at most ${MAX_TIME_MS} ms` : `runs at ${at} ms: must be at most ${MAX_TIME_MS} ms`))
      last = Math.max(last, at)
    }
    const action = exactlyOne(here, s, ['toxic', 'partition', 'proxy'])
    const v = action && s[action]
    if (typeof v !== 'object' || v === null) return
    const a = v as Record<string, unknown>
    if (action === 'toxic') {
      const op = exactlyOne([...here, 'toxic'], a, ['add', 'update', 'remove'])
      const u = a.update as Record<string, unknown> | undefined
      if (op === 'update' && typeof u === 'object' && u !== null && u.attributes === undefined && u.toxicity === undefined) {
        issues.push(loc.at([...here, 'toxic', 'update'], 'nothing to change: give attributes and/or toxicity'))
      }
    } else if (action === 'partition') {
      const op = exactlyOne([...here, 'partition'], a, ['cut', 'heal'])
      if (op === 'cut') for (const p of partitionProblems(a.cut)) issues.push(loc.at([...here, 'partition', 'cut', ...p.path], p.message))
    }
  })
  const duration = parseTime(o.duration)
  if (duration !== undefined && duration < last) {
    issues.push(loc.at(['duration'], `shorter than the last step (at ${formatTime(last)}): steps after it would never run`))
  } else if (duration !== undefined && duration > MAX_TIME_MS) {
    issues.push(loc.at(['duration'], `must be at most ${MAX_TIME_MS} ms`))
  }
  return issues
}

function normalize(data: unknown, fallbackName: string): Scenario {
  type RawStep = Omit<ScenarioStep, 'at' | 'after'> & { at?: number | string; after?: { step: number | string; delay?: number | string } }
  const o = data as { name?: string; description?: string; repeat: number; duration?: number | string; steps: RawStep[] }
  const { times, seq } = stepTimes(o.steps)
  const steps: ScenarioStep[] = o.steps.map((s, i) => {
    const add = s.toxic?.add as { name?: string; type: string; stream: string } | undefined
    if (add) add.name = toxicName(add.name, add.type, add.stream)
    const { after, ...rest } = s
    return {
      ...rest,
      at: times[i]!,
      ...(after ? { after: { step: after.step, delay: after.delay === undefined ? 0 : parseTime(after.delay)! } } : {}),
    }
  })
  // A stable sort: steps at the same time run in file order, except that a step runs after the one it follows.
  const order = steps.map((s, i) => ({ s, i })).sort((a, b) => a.s.at - b.s.at || seq[a.i]! - seq[b.i]! || a.i - b.i).map(x => x.s)
  const last = order.at(-1)?.at ?? 0
  return deepFreeze({
    name: o.name ?? fallbackName,
    ...(o.description !== undefined ? { description: o.description } : {}),
    repeat: o.repeat,
    duration: o.duration === undefined ? last : parseTime(o.duration)!,
    steps: order,
  })
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

const nameOf = (file: string) => basename(file, extname(file)) || 'scenario'

/** Checks scenario text (YAML or JSON); ScenarioInvalidError lists every issue as `file:line:column: field: problem`. */
export function parseScenario(file: string, text: string, behaviors: readonly Behavior[]): Scenario {
  const { raw, doc, lines } = readYaml(file, text, ScenarioInvalidError)
  checkWith(new Locator(file, doc, lines, []), raw, { validate: validator(behaviors), behaviors, cross: crossChecks, error: ScenarioInvalidError })
  return normalize(raw, nameOf(file))
}

/** Checks a scenario given as a value (an API body); issues name `label: field: problem`. */
export function checkScenario(value: unknown, behaviors: readonly Behavior[], label = 'scenario'): Scenario {
  const copy = structuredClone(value)
  checkWith(valueLocator(label, copy), copy, { validate: validator(behaviors), behaviors, cross: crossChecks, error: ScenarioInvalidError })
  return normalize(copy, 'scenario')
}

/** Reads and checks a scenario file; ConfigReadError if it cannot be read. */
export async function loadScenario(file: string, behaviors: readonly Behavior[]): Promise<Scenario> {
  return parseScenario(file, await readConfigText(file), behaviors)
}

/**
 * The body of POST /scenarios: a scenario as JSON, or `{ yaml: "<text>", file?: "<name for messages>" }`.
 * The server never reads a file named in a request: `file` only labels the issues.
 */
export function scenarioFromBody(body: unknown, behaviors: readonly Behavior[]): Scenario {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'yaml' in body) {
    const { yaml, file, ...rest } = body as { yaml: unknown; file?: unknown }
    if (typeof yaml !== 'string') throw new ScenarioInvalidError('yaml must be a string: the scenario\'s text')
    if (file !== undefined && typeof file !== 'string') throw new ScenarioInvalidError('file must be a string')
    if (Object.keys(rest).length > 0) throw new ScenarioInvalidError(`unknown field next to yaml: ${Object.keys(rest).join(', ')}`)
    return parseScenario(file ?? 'scenario.yaml', yaml, behaviors)
  }
  return checkScenario(body, behaviors, 'body')
}

// Describing ------------------------------------------------------------------------------------

const kv = (attrs: Readonly<Record<string, unknown>> | undefined) =>
  Object.entries(attrs ?? {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')

/** One line for people: `add toxic slow (latency latency=200) to api`. */
export function describeStep(step: ScenarioStep): string {
  if (step.toxic) {
    const { proxy, add, update, remove } = step.toxic
    if (add) {
      const shown = Object.fromEntries(Object.entries(add.attributes).filter(([k, v]) => !((k === 'after' || k === 'count') && v === 0)))
      const attrs = kv(shown)
      return `add toxic ${add.name} (${add.type}${attrs ? ` ${attrs}` : ''}${add.toxicity < 1 ? `, toxicity ${add.toxicity}` : ''}) to ${proxy}`
    }
    if (update) {
      const parts = [kv(update.attributes), update.toxicity !== undefined ? `toxicity ${update.toxicity}` : ''].filter(Boolean)
      return `update toxic ${update.name} on ${proxy}: ${parts.join(', ')}`
    }
    return `remove toxic ${remove} from ${proxy}`
  }
  if (step.partition) {
    const { cut, heal } = step.partition
    if (cut) {
      const mode = cut.mode ?? 'blackhole'
      const how = [mode, ...(mode === 'blackhole' ? [cut.direction ?? 'both'] : []), ...(cut.clients ? [`clients ${cut.clients.join(' ')}`] : []),
        ...(cut.duration !== undefined ? [`for ${formatTime(parseTime(cut.duration)!)}`] : []),
        ...(cut.flap ? [`flapping up ${formatTime(parseTime(cut.flap.up)!)} / down ${formatTime(parseTime(cut.flap.down)!)}`] : [])]
      return `cut partition ${cut.name}: ${cut.proxies.join(', ')} (${how.join(', ')})`
    }
    return `heal partition ${heal}`
  }
  return `${step.proxy!.enabled ? 'enable' : 'disable'} proxy ${step.proxy!.name}`
}

// Running ---------------------------------------------------------------------------------------

export type ScenarioState = 'running' | 'done' | 'stopped' | 'failed'

export interface StepRecord {
  /** 1-based pass and step (in time order). */
  readonly pass: number
  readonly step: number
  /** When it was due, ms from the scenario's start. */
  readonly at_ms: number
  readonly did: string
  readonly error?: string
}

interface FaultSnapshot { type: string; stream: FaultStream; toxicity: number; attributes: Readonly<Record<string, unknown>> }

/** Records kept per run in its JSON (the newest). */
const LOG_SIZE = 100

export class ScenarioRun {
  state: ScenarioState = 'running'
  error: string | undefined
  /** What the undo did, for people: `removed toxic slow from api`. */
  readonly undone: string[] = []
  readonly log: StepRecord[] = []
  readonly startedAt = new Date()
  readonly #start: number
  #stopping = false
  #timer: Timer | undefined
  #wake: ((go: boolean) => void) | undefined
  #loop: Promise<void>
  #next: { pass: number; step: number } = { pass: 0, step: 0 }
  #endedAt: number | undefined
  /** Before-images of what the scenario touched, taken at the first touch. */
  readonly #toxics = new Map<string, { proxy: string; name: string; before: FaultSnapshot | null }>()
  readonly #partitions = new Map<string, PartitionConfig | null>()
  readonly #enabled = new Map<string, boolean>()
  readonly #finished: Promise<void>
  #finish!: () => void

  constructor(readonly id: string, readonly scenario: Scenario, readonly registry: Registry) {
    this.#start = registry.clock.now()
    this.#finished = new Promise(r => { this.#finish = r })
    this.registry.log.info({ scenario: scenario.name, id, steps: scenario.steps.length, repeat: scenario.repeat, ms: this.total }, 'scenario started')
    this.#loop = this.#run()
  }

  /** Total length, ms: passes × pass length. */
  get total(): number { return this.scenario.repeat * this.scenario.duration }
  get elapsed(): number { return (this.#endedAt ?? this.registry.clock.now()) - this.#start }
  /** Settles when the run ends (done, stopped, failed). */
  get finished(): Promise<void> { return this.#finished }

  /** Stops the run and undoes what it applied (nothing if it already ended). */
  async stop(): Promise<void> {
    if (this.#stopping || this.state !== 'running') return this.#finished
    this.#halt()
    await this.#loop
    if (this.state === 'running') {
      await this.#undo()
      this.#end('stopped')
    }
    return this.#finished
  }

  /** Stops without undoing (POST /reset, shutdown). */
  cancel(): void {
    if (this.state !== 'running') return
    this.#halt()
    this.#toxics.clear(); this.#partitions.clear(); this.#enabled.clear()
    this.#end('stopped')
  }

  #halt(): void {
    this.#stopping = true
    this.#timer?.cancel()
    this.#timer = undefined
    const wake = this.#wake
    this.#wake = undefined
    wake?.(false)
  }

  #end(state: Exclude<ScenarioState, 'running'>, error?: string): void {
    if (this.state !== 'running') return
    this.state = state
    this.error = error
    this.#endedAt = this.registry.clock.now()
    this.registry.log[state === 'failed' ? 'warn' : 'info']({ scenario: this.scenario.name, id: this.id, state, error, undone: this.undone.length }, 'scenario ended')
    this.#finish()
  }

  /** Resolves true at scenario time `t` (at once if it has passed), false if the run is stopped first. */
  #until(t: number): Promise<boolean> {
    if (this.#stopping) return Promise.resolve(false)
    const wait = t - this.elapsed
    if (wait <= 0) return Promise.resolve(true)
    return new Promise(resolve => {
      this.#wake = resolve
      this.#timer = this.registry.clock.setTimeout(() => {
        this.#timer = undefined
        this.#wake = undefined
        resolve(true)
      }, wait)
    })
  }

  async #run(): Promise<void> {
    const { steps, repeat, duration } = this.scenario
    for (let pass = 0; pass < repeat; pass++) {
      for (const [i, step] of steps.entries()) {
        this.#next = { pass, step: i }
        const at = pass * duration + step.at
        if (!(await this.#until(at))) return
        const did = describeStep(step)
        try {
          await this.#exec(step)
        } catch (err) {
          const message = (err as Error).message ?? String(err)
          this.#record({ pass: pass + 1, step: i + 1, at_ms: at, did, error: message })
          if (this.#stopping) return
          await this.#undo()
          this.#end('failed', `step ${i + 1}${repeat > 1 ? ` of pass ${pass + 1}` : ''} (${did}): ${message}`)
          return
        }
        this.#record({ pass: pass + 1, step: i + 1, at_ms: at, did })
        this.registry.log.info({ scenario: this.scenario.name, id: this.id, pass: pass + 1, step: i + 1, did }, 'scenario step')
      }
    }
    this.#next = { pass: repeat, step: 0 }
    if (!(await this.#until(this.total))) return
    this.#end('done')
  }

  #record(r: StepRecord): void {
    this.log.push(r)
    if (this.log.length > LOG_SIZE) this.log.shift()
  }

  async #exec(step: ScenarioStep): Promise<void> {
    const r = this.registry
    if (step.toxic) {
      const { proxy, add, update, remove } = step.toxic
      const p = r.get(proxy)
      const name = add?.name ?? update?.name ?? remove!
      const key = `${proxy}\0${name}`
      if (!this.#toxics.has(key)) {
        const f = p.faults.find(x => x.name === name)
        this.#toxics.set(key, { proxy, name, before: f ? { type: f.type, stream: f.stream, toxicity: f.toxicity, attributes: f.attributes } : null })
      }
      if (add) p.addFault(r.makeFault(add))
      else if (update) r.updateFault(proxy, update.name, { attributes: update.attributes, toxicity: update.toxicity })
      else p.removeFault(remove!)
    } else if (step.partition) {
      const { cut, heal } = step.partition
      const name = cut?.name ?? heal!
      if (!this.#partitions.has(name)) this.#partitions.set(name, r.partitions.has(name) ? r.partitions.get(name).config : null)
      if (cut) r.partitions.cut(cut)
      else r.partitions.heal(heal!)
    } else if (step.proxy) {
      const p = r.get(step.proxy.name)
      if (!this.#enabled.has(p.name)) this.#enabled.set(p.name, p.enabled)
      await p.setEnabled(step.proxy.enabled)
    }
  }

  /** Brings each thing the run touched back to its before-image; what fails is logged and skipped. */
  async #undo(): Promise<void> {
    const r = this.registry
    const attempt = async (what: string, fn: () => unknown) => {
      try {
        await fn()
        this.undone.push(what)
      } catch (err) {
        this.undone.push(`${what}: failed: ${(err as Error).message}`)
        r.log.warn({ scenario: this.scenario.name, id: this.id, err: (err as Error).message }, 'scenario undo step failed')
      }
    }
    for (const { proxy, name, before } of [...this.#toxics.values()].reverse()) {
      const p = r.proxies.get(proxy)
      if (!p) continue
      const now = p.faults.find(x => x.name === name)
      if (!before) {
        if (now) await attempt(`removed toxic ${name} from ${proxy}`, () => p.removeFault(name))
      } else if (!now) {
        await attempt(`restored toxic ${name} on ${proxy}`, () => p.addFault(r.makeFault({ name, ...before })))
      } else if (now.type !== before.type || now.stream !== before.stream) {
        await attempt(`restored toxic ${name} on ${proxy}`, () => { p.removeFault(name); p.addFault(r.makeFault({ name, ...before })) })
      } else if (now.toxicity !== before.toxicity || !same(now.attributes, before.attributes)) {
        await attempt(`restored toxic ${name} on ${proxy}`, () => p.updateFault(name, before.attributes, before.toxicity))
      }
    }
    for (const [name, before] of [...this.#partitions].reverse()) {
      const now = r.partitions.has(name) ? r.partitions.get(name) : undefined
      if (!before) {
        if (now) await attempt(`healed partition ${name}`, () => r.partitions.heal(name))
      } else if (!now) {
        await attempt(`cut partition ${name} again`, () => r.partitions.cut(before, { allowMissing: true }))
      } else if (!same(now.config, before)) {
        await attempt(`restored partition ${name}`, () => { r.partitions.heal(name); r.partitions.cut(before, { allowMissing: true }) })
      }
    }
    for (const [name, before] of [...this.#enabled].reverse()) {
      const p = r.proxies.get(name)
      if (p && p.enabled !== before) await attempt(`${before ? 'enabled' : 'disabled'} proxy ${name}`, () => p.setEnabled(before))
    }
    this.#toxics.clear(); this.#partitions.clear(); this.#enabled.clear()
  }

  toJSON() {
    const { scenario } = this
    const running = this.state === 'running'
    const next = running && this.#next.pass < scenario.repeat ? scenario.steps[this.#next.step] : undefined
    return {
      id: this.id,
      name: scenario.name,
      state: this.state,
      ...(this.error !== undefined ? { error: this.error } : {}),
      started_at: this.startedAt.toISOString(),
      elapsed_ms: Math.round(this.elapsed),
      remaining_ms: running ? Math.max(0, Math.round(this.total - this.elapsed)) : 0,
      duration_ms: this.total,
      pass_ms: scenario.duration,
      repeat: scenario.repeat,
      steps: scenario.steps.length,
      ...(next ? {
        next: { pass: this.#next.pass + 1, step: this.#next.step + 1, at_ms: this.#next.pass * scenario.duration + next.at, does: describeStep(next) },
      } : {}),
      log: this.log,
      ...(this.undone.length > 0 ? { undone: this.undone } : {}),
    }
  }
}

export type ScenarioInfo = ReturnType<ScenarioRun['toJSON']>

/** Finished runs kept for GET /scenarios/{id} (so a client polling for the end sees it). */
const KEEP_FINISHED = 16

/** The scenarios of one registry: running ones and the last few finished, by id. */
export class Scenarios {
  readonly #runs = new Map<string, ScenarioRun>()
  #nextId = 1
  constructor(readonly registry: Registry) {}

  /** Starts a checked scenario; its first steps at 0 run on the next tick. */
  start(scenario: Scenario): ScenarioRun {
    const run = new ScenarioRun(String(this.#nextId++), scenario, this.registry)
    this.#runs.set(run.id, run)
    void run.finished.then(() => this.#prune())
    return run
  }

  get(id: string): ScenarioRun {
    const run = this.#runs.get(id)
    if (!run) throw new ScenarioNotFoundError(id)
    return run
  }

  list(): ScenarioRun[] { return [...this.#runs.values()] }

  /** Stops a running scenario and undoes what it applied; a finished one is left as it is. */
  async stop(id: string): Promise<ScenarioRun> {
    const run = this.get(id)
    await run.stop()
    return run
  }

  /** Stops every running scenario without undoing (reset, shutdown). */
  cancelAll(): void {
    for (const run of this.#runs.values()) run.cancel()
  }

  #prune(): void {
    const finished = [...this.#runs.values()].filter(r => r.state !== 'running')
    for (const r of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#runs.delete(r.id)
  }
}
