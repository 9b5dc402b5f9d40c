import type { FaultSpec } from '../faults/fault.js'
import { InvalidRequestError } from '../core/errors.js'
import { parseValue } from './commands.js'


/**
 * `--fault [N%:]TYPE[:key=value,...]`, Vaurien style: `latency:latency=100,jitter=10`, `20%:reset_peer`.
 * The keys `name`, `stream` and `toxicity` set the fault itself; the others are attributes.
 */
export function parseFaultFlag(flag: string): FaultSpec {
  const m = /^(?:(\d+(?:\.\d+)?)%:)?([a-z_]+)(?::(.*))?$/.exec(flag.trim())
  if (!m) throw new InvalidRequestError(`--fault ${JSON.stringify(flag)}: expected [N%:]TYPE[:key=value,...]`)
  const spec: FaultSpec & { attributes: Record<string, unknown> } = { type: m[2]!, stream: 'both', attributes: {} }
  if (m[1] !== undefined) spec.toxicity = Number(m[1]) / 100
  for (const pair of (m[3] ?? '').split(',').filter(Boolean)) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new InvalidRequestError(`--fault ${JSON.stringify(flag)}: ${JSON.stringify(pair)} is not key=value`)
    const key = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    if (key === 'name') spec.name = value
    else if (key === 'stream') spec.stream = value
    else if (key === 'toxicity') spec.toxicity = Number(value)
    else spec.attributes[key] = parseValue(value)
  }
  return spec
}
