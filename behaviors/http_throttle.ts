import { MAX_COUNT, checkMatch, defineBehavior, httpMatch, Type, type HttpRequest } from '../src/faults/behavior.js'

/** Keys kept per fault; the least recently seen goes first. */
const MAX_KEYS = 10_000

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>' +
  '<Message>Please reduce your request rate.</Message><RequestId>coquin</RequestId><HostId>coquin</HostId></Error>'

/** Token buckets by key, in units of 1/1000 token so that integer rates and ms clocks stay exact. */
interface Bucket { credit: number; at: number }
type Buckets = Map<string, Bucket>

function keyOf(key: string, req: HttpRequest): string {
  if (key === 'bucket') return req.path.split('/', 2)[1] ?? ''
  if (key === 'host_bucket') return (req.headers.host ?? '').replace(/:\d*$/, '').split('.', 1)[0]!.toLowerCase()
  if (key === 'path') return req.path
  return req.headers[key.slice('header:'.length).toLowerCase()] ?? ''
}

export default defineBehavior({
  type: 'http_throttle',
  summary: 'Answer requests over `rate` per second per key (an S3 bucket…) with 503 SlowDown, without forwarding them.',
  notes: 'HTTP proxies only. A token bucket per key, shared by every link of the proxy: it starts full (`burst` tokens) ' +
    'and refills at `rate` tokens per second; a matching request takes a token or, if there is none, is answered like ' +
    'http_status does. So over T seconds a key passes about burst + rate × T requests. toxicity is the share of ' +
    'over-limit requests answered (the others pass without a token); after/count count over-limit requests. At most ' +
    `${MAX_KEYS} keys are kept (least recently seen evicted); changing rate or burst keeps the buckets. \`stream\` is ignored.`,
  protocols: ['http'],
  attributes: Type.Object({
    match: httpMatch,
    rate: Type.Number({ exclusiveMinimum: 0, maximum: MAX_COUNT, default: 10, description: 'requests per second allowed per key' }),
    burst: Type.Integer({ minimum: 0, maximum: MAX_COUNT, default: 0, description: 'bucket size: requests allowed at once; 0 = rate (at least 1)' }),
    key: Type.String({
      pattern: '^(bucket|host_bucket|path|header:[!#$%&\'*+.^_`|~0-9A-Za-z-]+)$', default: 'bucket',
      description: 'what a limit applies to: `bucket` (first path segment), `host_bucket` (the Host\'s first label), `path`, or `header:NAME`',
    }),
    status: Type.Integer({ minimum: 200, maximum: 599, default: 503, description: 'status code of the answer' }),
    headers: Type.Record(Type.String(), Type.String(), { default: { 'Content-Type': 'application/xml' }, description: 'header fields of the answer' }),
    body: Type.String({ default: SLOW_DOWN, description: 'body of the answer (default: an S3 SlowDown XML error)' }),
  }),
  validate: a => checkMatch(a.match),
  init: (): Buckets => new Map(),
  request(a, req, fault, { clock }) {
    const buckets = fault.state as Buckets
    const key = keyOf(a.key, req)
    const now = clock.now()
    const full = Math.max(1, a.burst > 0 ? a.burst : Math.ceil(a.rate)) * 1000
    let b = buckets.get(key)
    if (b) {
      buckets.delete(key)                                 // re-inserted last: the Map's order is recency
      b.credit = Math.min(full, b.credit + Math.max(0, now - b.at) * a.rate)
      b.at = now
    } else {
      b = { credit: full, at: now }
      if (buckets.size >= MAX_KEYS) buckets.delete(buckets.keys().next().value as string)
    }
    buckets.set(key, b)
    if (b.credit >= 1000) { b.credit -= 1000; return null }
    return { action: 'respond', status: a.status, headers: a.headers, body: a.body }
  },
})
