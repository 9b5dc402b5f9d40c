// The proxy registry: every proxy of one coquin process, and the faults on them. The control API,
// configs and the embedded test server all drive coquin through this class.
import type { Behavior } from '../faults/behavior.js'
import { realClock, type Clock } from '../core/clock.js'
import { Catalog, Fault, parseToxicity, type FaultSpec } from '../faults/fault.js'
import { silentLogger, throttledLog, type Logger, type ThrottledLog } from '../core/log.js'
import { nullObserver, type Observer } from '../observe/observer.js'
import { PROXY_NAME, PROXY_NAME_RULE, Proxy } from '../datapath/proxy.js'
import { hashString, randomSeed, seededRandom } from '../core/random.js'
import { Partitions } from './partition.js'
import { Scenarios } from './scenario.js'
import { linkBudget, type LinkBudget } from '../datapath/link-budget.js'
import { checkTlsSpec, loadTls, type TlsSpec } from '../datapath/tls.js'
import { HTTP_FALLBACK_POLICIES, type HttpFallbackPolicy } from '../protocols/http/index.js'
import { isProtocol, protocolMismatch, PROTOCOLS, type Protocol } from '../protocols/index.js'
import { InvalidRequestError, ProxyExistsError, ProxyNotFoundError } from '../core/errors.js'

export interface RegistryOptions {
  behaviors: readonly Behavior[]
  seed?: number
  log?: Logger
  clock?: Clock
  observer?: Observer
  /** Links open at once over all proxies; default: what the file descriptor limit allows (src/datapath/link-budget.ts). */
  maxLinks?: number
}

export interface ProxySpec {
  name?: unknown
  listen?: unknown
  upstream?: unknown
  enabled?: unknown
  protocol?: unknown
  header_faults?: unknown
  http_fallback?: unknown
  tls?: unknown
  toxics?: unknown
}

/** A proxy spec checked by Registry.check: defaults filled in, faults built. */
export interface CheckedProxy {
  name: string
  listen: string
  upstream: string
  enabled: boolean
  protocol: Protocol
  header_faults: boolean
  http_fallback: HttpFallbackPolicy
  tls: TlsSpec | undefined
  faults: Fault[]
}

const sameTls = (a: TlsSpec | undefined, b: TlsSpec | undefined) => JSON.stringify(a) === JSON.stringify(b)

export class Registry {
  readonly proxies = new Map<string, Proxy>()
  readonly catalog: Catalog
  readonly seed: number
  readonly log: Logger
  readonly clock: Clock
  readonly observer: Observer
  readonly warn: ThrottledLog
  readonly budget: LinkBudget
  /** Named cuts of the paths through proxies; they outlive a proxy's re-creation under the same name. */
  readonly partitions: Partitions
  /** Timelines running against this registry (src/control/scenario.ts). */
  readonly scenarios: Scenarios

  constructor(opts: RegistryOptions) {
    this.catalog = new Catalog(opts.behaviors)
    this.seed = opts.seed ?? randomSeed()
    this.log = opts.log ?? silentLogger
    this.clock = opts.clock ?? realClock
    this.observer = opts.observer ?? nullObserver
    this.warn = throttledLog(this.log, this.clock)
    this.budget = linkBudget(opts.maxLinks)
    this.partitions = new Partitions(this)
    this.scenarios = new Scenarios(this)
  }

  get(name: string): Proxy {
    const p = this.proxies.get(name)
    if (!p) throw new ProxyNotFoundError().withDetail(`no proxy named ${JSON.stringify(name)}`)
    return p
  }

  /** Builds a fault from a spec (Toxiproxy's defaults filled in), checked against its behavior. */
  makeFault(spec: FaultSpec): Fault {
    const n = this.catalog.normalize(spec)
    return new Fault(n.name, n.type, n.stream, n.toxicity, Object.freeze(n.attributes), this.catalog.get(n.type)!)
  }

  /** Checks a proxy spec and its faults without touching anything: all or nothing. */
  check(spec: ProxySpec, where = ''): CheckedProxy {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new InvalidRequestError(`proxy must be an object${where}`)
    if (typeof spec.name !== 'string' || spec.name === '') throw new InvalidRequestError(`missing required field: name${where}`)
    if (!PROXY_NAME.test(spec.name)) {
      throw new InvalidRequestError(`proxy name ${JSON.stringify(spec.name)} cannot be used in a URL path (${PROXY_NAME_RULE})${where}`)
    }
    if (typeof spec.upstream !== 'string' || spec.upstream === '') throw new InvalidRequestError(`missing required field: upstream${where}`)
    const listen = spec.listen === undefined || spec.listen === null || spec.listen === '' ? '127.0.0.1:0' : spec.listen
    if (typeof listen !== 'string') throw new InvalidRequestError(`listen must be a string${where}`)
    if (spec.enabled !== undefined && spec.enabled !== null && typeof spec.enabled !== 'boolean') throw new InvalidRequestError(`enabled must be a boolean${where}`)
    const protocol = spec.protocol ?? 'tcp'
    if (!isProtocol(protocol)) throw new InvalidRequestError(`protocol must be ${PROTOCOLS.join(' or ')}${where}`)
    const headerFaults = spec.header_faults ?? false
    if (typeof headerFaults !== 'boolean') throw new InvalidRequestError(`header_faults must be a boolean${where}`)
    const httpFallback = spec.http_fallback ?? 'pass'
    if (!HTTP_FALLBACK_POLICIES.includes(httpFallback as HttpFallbackPolicy)) {
      throw new InvalidRequestError(`http_fallback must be ${HTTP_FALLBACK_POLICIES.join(' or ')}${where}`)
    }
    const tls = checkTlsSpec(spec.tls, where)
    const toxics = spec.toxics ?? []
    if (!Array.isArray(toxics)) throw new InvalidRequestError(`toxics must be a list${where}`)
    const faults = toxics.map(t => this.makeFault(t as FaultSpec))
    const names = new Set<string>()
    for (const f of faults) {
      if (names.has(f.name)) throw new InvalidRequestError(`toxic ${f.name} given twice${where}`)
      names.add(f.name)
    }
    for (const f of faults) {
      const mismatch = protocolMismatch(f.behavior, protocol)
      if (mismatch) throw new InvalidRequestError(`${mismatch}${where}`)
    }
    return { name: spec.name, listen, upstream: spec.upstream, enabled: spec.enabled !== false, protocol, header_faults: headerFaults, http_fallback: httpFallback as HttpFallbackPolicy, tls, faults }
  }

  /** Creates and starts a proxy with its faults, atomically: on any error nothing is left behind. */
  async create(spec: ProxySpec, where = ''): Promise<Proxy> {
    const c = this.check(spec, where)
    if (this.proxies.has(c.name)) throw new ProxyExistsError()
    const tls = c.tls ? await loadTls(c.tls) : undefined
    if (this.proxies.has(c.name)) throw new ProxyExistsError()   // made while the certificate was read
    const proxy = new Proxy({ ...c, tls }, {
      log: this.log, clock: this.clock, observer: this.observer, warn: this.warn, budget: this.budget,
      random: seededRandom(this.seed ^ hashString(c.name)),
    })
    for (const f of c.faults) proxy.addFault(f)
    this.partitions.attach(proxy)
    this.proxies.set(c.name, proxy)
    try {
      await proxy.start()
    } catch (err) {
      this.proxies.delete(c.name)
      throw err
    }
    return proxy
  }

  async delete(name: string): Promise<void> {
    const p = this.get(name)
    this.proxies.delete(name)
    await p.stop('proxy_deleted')
  }

  /**
   * Toxiproxy's populate: every entry is checked first; a proxy with the same name and addresses is
   * left untouched (faults and enabled state kept), others are replaced. Returns the proxies in order;
   * on error, `created` holds those made so far.
   */
  async populate(specs: unknown): Promise<Proxy[]> {
    if (!Array.isArray(specs)) throw new InvalidRequestError('populate body must be a list of proxies')
    const checked = specs.map((s, i) => this.check(s as ProxySpec, ` at proxy ${i + 1}`))
    const out: Proxy[] = []
    try {
      for (const [i, c] of checked.entries()) {
        const old = this.proxies.get(c.name)
        if (old && old.listen === c.listen && old.upstream === c.upstream && sameTls(old.tls?.spec, c.tls)) { out.push(old); continue }
        if (old) await this.delete(c.name)
        out.push(await this.create(specs[i] as ProxySpec, ` at proxy ${i + 1}`))
      }
    } catch (err) {
      throw Object.assign(err as Error, { created: out })
    }
    return out
  }

  /**
   * Toxiproxy's reset: enable every proxy and remove every fault. coquin's: heal every partition too,
   * and stop running scenarios without undoing them (there is nothing left to undo to).
   */
  async reset(): Promise<void> {
    this.scenarios.cancelAll()
    this.partitions.healAll()
    for (const p of this.proxies.values()) {
      p.removeAllFaults()
      await p.setEnabled(true)
    }
  }

  /** Merges a partial fault update into the existing one and checks the result. */
  updateFault(proxy: string, name: string, patch: { attributes?: unknown; toxicity?: unknown }): Fault {
    const p = this.get(proxy)
    const f = p.fault(name)
    if (patch.attributes !== undefined && patch.attributes !== null &&
        (typeof patch.attributes !== 'object' || Array.isArray(patch.attributes))) {
      throw new InvalidRequestError('attributes must be an object')
    }
    const merged = { ...f.attributes, ...(patch.attributes as object | undefined) }
    const attrs = Object.freeze(this.catalog.attributes(f.type, merged))
    const toxicity = patch.toxicity === undefined || patch.toxicity === null ? f.toxicity : parseToxicity(patch.toxicity)
    return p.updateFault(name, attrs, toxicity)
  }

  /** Stop every proxy: listeners close at once, open links get up to graceMs to end by themselves (default: none). */
  async close(graceMs = 0): Promise<void> {
    this.scenarios.cancelAll()
    this.partitions.healAll()
    await Promise.all([...this.proxies.values()].map(p => p.close(graceMs, 'shutdown')))
    this.proxies.clear()
  }
}
