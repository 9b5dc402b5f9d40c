// Every protocol layer coquin speaks, by the name a proxy gives in `protocol`. `tcp` has no layer: bytes go
// straight to the faults' stages. Adding a protocol is one line in LAYERS (see src/protocols/layer.ts).
import type { Behavior } from '../faults/behavior.js'
import type { ProtocolLayer } from './layer.js'
import { httpLayer } from './http/layer.js'
import { redisLayer } from './redis/layer.js'
import { postgresLayer } from './postgres/layer.js'

export type { ProtocolHost, ProtocolLayer } from './layer.js'

const LAYERS = { http: httpLayer, redis: redisLayer, postgres: postgresLayer } as const satisfies Record<string, ProtocolLayer>

export type Protocol = 'tcp' | keyof typeof LAYERS
/** Every value a proxy's `protocol` takes: the config schema, the API and the CLI read it here. */
export const PROTOCOLS: readonly Protocol[] = ['tcp', ...(Object.keys(LAYERS) as (keyof typeof LAYERS)[])]

export function isProtocol(v: unknown): v is Protocol {
  return typeof v === 'string' && (PROTOCOLS as readonly string[]).includes(v)
}

/** The layer at the head of a link of this protocol; undefined for `tcp`. */
export function layerOf(protocol: Protocol | undefined): ProtocolLayer | undefined {
  return protocol === undefined || protocol === 'tcp' ? undefined : LAYERS[protocol]
}

/** The one rule for "this fault type works on these protocols only": a message when it does not fit, else undefined. */
export function protocolMismatch(behavior: Pick<Behavior, 'type' | 'protocols'>, protocol: Protocol): string | undefined {
  const only = behavior.protocols
  if (!only || only.includes(protocol)) return undefined
  return `${behavior.type} works on ${only.join('/')} proxies only, and this proxy's protocol is ${protocol}`
}
