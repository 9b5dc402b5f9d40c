// Every error coquin raises on purpose has a stable code, a message and an HTTP status.
// The README's Errors table lists each code; test/errors.ts keeps the two in sync.
export class CoquinError extends Error {
  override name = 'CoquinError'
  /** What exactly was wrong, beside a message that must stay Toxiproxy's word for word (`detail` in the API body). */
  detail: string | undefined
  constructor(readonly code: string, message: string, readonly statusCode = 500) { super(message) }
  because(cause: unknown): this { this.cause = cause; return this }
  withDetail(detail: string): this { this.detail = detail; return this }
}

const define = <A extends unknown[]>(code: string, status: number, format: (...a: A) => string) => {
  const E = class extends CoquinError { constructor(...a: A) { super(code, format(...a), status) } }
  codes.set(code, status)
  return E
}
export const codes = new Map<string, number>()

export const ProxyNotFoundError = define('COQUIN_ERR_PROXY_NOT_FOUND', 404, () => 'proxy not found')
export const ProxyExistsError = define('COQUIN_ERR_PROXY_EXISTS', 409, () => 'proxy already exists')
export const ToxicNotFoundError = define('COQUIN_ERR_TOXIC_NOT_FOUND', 404, () => 'toxic not found')
export const ToxicExistsError = define('COQUIN_ERR_TOXIC_EXISTS', 409, () => 'toxic already exists')
export const InvalidToxicTypeError = define('COQUIN_ERR_TOXIC_TYPE', 400, () => 'invalid toxic type')
export const InvalidStreamError = define('COQUIN_ERR_TOXIC_STREAM', 400,
  () => 'stream was invalid, can be either upstream or downstream')
export const InvalidAttributesError = define('COQUIN_ERR_TOXIC_ATTRIBUTES', 400,
  (detail: string) => `invalid attributes: ${detail}`)
export const InvalidRequestError = define('COQUIN_ERR_BAD_REQUEST', 400, (detail: string) => detail)
export const InvalidAddressError = define('COQUIN_ERR_ADDRESS', 400,
  (field: string, value: string) => `${field} is not a host:port address: ${JSON.stringify(value)}`)
export const ListenError = define('COQUIN_ERR_LISTEN', 500,
  (addr: string, reason: string) => `listen tcp ${addr}: ${reason}`)
export const ConfigInvalidError = define('COQUIN_ERR_CONFIG_INVALID', 400, (detail: string) => detail)
export const ConfigReadError = define('COQUIN_ERR_CONFIG_READ', 400,
  (file: string, reason: string) => `cannot read config ${file}: ${reason}`)
export const NoCertificateError = define('COQUIN_ERR_NO_CERTIFICATE', 404, () => 'this proxy does not terminate TLS: it has no certificate (see tls.listen)')
export const UnauthorizedError = define('COQUIN_ERR_UNAUTHORIZED', 401, () => 'missing or wrong bearer token')
export const BodyTooLargeError = define('COQUIN_ERR_BODY_TOO_LARGE', 413, (limit: number) => `request body over ${limit} bytes`)

/** Socket errors a proxy causes or meets in normal life: outcomes to count, not failures to report. */
const PEER_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED', 'ETIMEDOUT'])
export function isPeerError(err: unknown): boolean {
  return PEER_CODES.has((err as NodeJS.ErrnoException | undefined)?.code ?? '')
}

// Control API (src/api/api.ts).
export const MethodNotAllowedError = define('COQUIN_ERR_METHOD_NOT_ALLOWED', 405, () => 'method not allowed')
export const ApiTimeoutError = define('COQUIN_ERR_API_TIMEOUT', 503, (ms: number) => `request not handled within ${ms} ms`)
/** Anything thrown that is not a CoquinError: a bug, answered as a 500 and logged at error. */
export const InternalError = define('COQUIN_ERR_INTERNAL', 500, (detail: string) => detail)

// Partitions (src/control/partition.ts) and scenarios (src/control/scenario.ts).
export const PartitionNotFoundError = define('COQUIN_ERR_PARTITION_NOT_FOUND', 404, (name: string) => `partition not found: ${name}`)
export const PartitionExistsError = define('COQUIN_ERR_PARTITION_EXISTS', 409, (name: string) => `partition already exists: ${name}`)
export const ScenarioInvalidError = define('COQUIN_ERR_SCENARIO_INVALID', 400, (detail: string) => detail)
export const ScenarioNotFoundError = define('COQUIN_ERR_SCENARIO_NOT_FOUND', 404, (id: string) => `scenario not found: ${id}`)
