// pool-idle-reset: a keep-alive HTTP pool behind a load balancer that drops idle connections.
// The naive storage client sends a PUT on a pooled connection the LB is closing and reports
// "permission denied"; the fixed one retries the idempotent PUT once on a fresh connection.
import t, { type Test } from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import { Registry, builtins } from '../../src/index.js'
import { httpBackend, ManualClock, until, within, type Backend } from '../support.js'

/** The LB's idle time (ms): connections with no byte either way for this long are dropped. */
const LB_IDLE = 300

// ── The storage client ────────────────────────────────────────────────────────────────────────────

interface Origin { host: string; port: number }

/** What a storage call fails with: an errno-style code the caller (a FUSE layer, a CLI) shows. */
class StorageError extends Error {
  override name = 'StorageError'
  constructor(readonly code: 'EACCES' | 'EIO', message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

interface Sent { status: number; reusedSocket: boolean }

/** One request on the agent's pool; a socket error rejects with the error, `reusedSocket` attached. */
function send(agent: http.Agent, origin: Origin, method: string, path: string, body: Buffer): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...origin, agent, method, path, headers: { 'content-length': body.length } }, res => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reusedSocket: req.reusedSocket }))
      res.on('error', reject)
    })
    req.on('error', err => reject(Object.assign(err, { reusedSocket: req.reusedSocket })))
    req.end(body)
  })
}

function statusError(key: string, status: number): StorageError {
  return status === 401 || status === 403
    ? new StorageError('EACCES', `permission denied: PUT ${key} (HTTP ${status})`)
    : new StorageError('EIO', `PUT ${key} failed: HTTP ${status}`)
}

/** As shipped: any failure of the PUT itself is taken for the bucket refusing the write. */
async function naivePut(agent: http.Agent, origin: Origin, key: string, body: Buffer): Promise<Sent> {
  let res: Sent
  try {
    res = await send(agent, origin, 'PUT', `/bucket/${key}`, body)
  } catch (err) {
    // The bug: "the backend would not take our write, so we may not write". A connection the LB
    // reset becomes EACCES, and someone spends the night reading the bucket policy.
    throw new StorageError('EACCES', `permission denied: PUT ${key}`, { cause: err })
  }
  if (res.status >= 300) throw statusError(key, res.status)
  return res
}

/** A pooled connection that died while idle: the request went out on a reused socket and the peer was gone. */
function isStaleConnection(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException & { reusedSocket?: boolean }
  return e.reusedSocket === true && (e.code === 'ECONNRESET' || e.code === 'EPIPE')
}

/** Idle sockets to this origin have been idle at least as long as the one that just died: drop them. */
function dropIdleSockets(agent: http.Agent, origin: Origin): void {
  for (const s of agent.freeSockets[agent.getName(origin)] ?? []) s.destroy()
}

/**
 * The fix: a PUT is idempotent, so when it fails on a reused connection that turns out to be dead,
 * it is sent once more on a fresh connection. Network errors are EIO; only 401/403 are EACCES.
 */
async function fixedPut(agent: http.Agent, origin: Origin, key: string, body: Buffer): Promise<Sent & { attempts: number }> {
  let attempts = 1
  let res: Sent
  try {
    res = await send(agent, origin, 'PUT', `/bucket/${key}`, body)
  } catch (err) {
    if (!isStaleConnection(err)) throw new StorageError('EIO', `PUT ${key}: ${(err as NodeJS.ErrnoException).code}`, { cause: err })
    dropIdleSockets(agent, origin)
    attempts++
    try {
      res = await send(agent, origin, 'PUT', `/bucket/${key}`, body)
    } catch (err2) {
      throw new StorageError('EIO', `PUT ${key}: ${(err2 as NodeJS.ErrnoException).code}`, { cause: err2 })
    }
  }
  if (res.status >= 300) throw statusError(key, res.status)
  return { ...res, attempts }
}

// ── The outage ────────────────────────────────────────────────────────────────────────────────────

type Mode = 'rst' | 'fin'

/**
 * A storage backend (a real HTTP server) behind an "LB": a coquin proxy with `idle_reset`. coquin runs
 * on a ManualClock, so the LB's idle time passes exactly when the test says.
 */
async function storageBehindLb(t: Test, mode: Mode) {
  const storage = await httpBackend(t)
  const clock = new ManualClock()
  const coquin = new Registry({ behaviors: builtins, clock })
  t.teardown(() => coquin.close())
  const lb = await coquin.create({
    name: 'lb', listen: '127.0.0.1:0', upstream: `127.0.0.1:${storage.port}`,
    toxics: [{ name: 'lb-idle', type: 'idle_reset', stream: 'both', attributes: { idle: LB_IDLE, mode } }],
  })
  return { storage, clock, lb, origin: { host: '127.0.0.1', port: lb.port } }
}

function pool(t: Test, opts: http.AgentOptions = {}): http.Agent {
  const agent = new http.Agent({ keepAlive: true, ...opts })
  t.teardown(() => agent.destroy())
  return agent
}

const body = Buffer.from('{"hello":"storage"}')

/** The first PUT opens the one pooled connection; it works. */
async function warmUp(t: Test, put: typeof naivePut, agent: http.Agent, origin: Origin, storage: Backend) {
  const first = await within(put(agent, origin, 'first', body), 5000, 'PUT first')
  t.equal(first.status, 200, 'the first PUT works')
  t.equal(storage.connections, 1, 'on one connection, now idle in the pool')
}

for (const mode of ['rst', 'fin'] as const) {
  t.test(`LB drops idle connections (idle_reset ${mode})`, async t => {
    t.test('naive: the PUT on the dead pooled connection is reported as permission denied', async t => {
      const { storage, clock, lb, origin } = await storageBehindLb(t, mode)
      const agent = pool(t)
      await warmUp(t, naivePut, agent, origin, storage)

      // The LB's idle time runs out and the next PUT goes out in the same tick: in production the
      // LB's FIN/RST and the request cross on the wire; here the race is lost every time.
      clock.advance(LB_IDLE)
      t.equal(lb.connections, 0, `the LB dropped the idle connection (${mode})`)
      const err = await within(naivePut(agent, origin, 'second', body), 5000, 'PUT second').then(
        () => t.fail('the naive PUT succeeded'), (e: unknown) => e)
      t.match(err, { name: 'StorageError', code: 'EACCES', message: /^permission denied/ }, 'reported as permission denied')
      t.match((err as Error).cause, { code: /^(ECONNRESET|EPIPE)$/, reusedSocket: true },
        'but it was the pooled connection, dead on reuse')
      t.equal(storage.requests, 1, 'the storage never saw the second PUT: no permission was ever checked')
    })

    t.test('fixed: the idempotent PUT is retried once on a fresh connection', async t => {
      const { storage, clock, lb, origin } = await storageBehindLb(t, mode)
      const agent = pool(t)
      await warmUp(t, fixedPut, agent, origin, storage)

      clock.advance(LB_IDLE)
      t.equal(lb.connections, 0, `the LB dropped the idle connection (${mode})`)
      const res = await within(fixedPut(agent, origin, 'second', body), 5000, 'PUT second')
      t.equal(res.status, 200, 'the PUT succeeds')
      t.equal(res.attempts, 2, 'on the second attempt')
      t.equal(res.reusedSocket, false, 'the retry went out on a new connection')
      t.equal(storage.connections, 2, 'the storage saw that second connection')
      t.equal(storage.requests, 2, 'and each PUT once')
    })
  })
}

t.test('prevention: a pool that retires idle sockets before the LB does never meets a dead one', async t => {
  const { storage, clock, lb, origin } = await storageBehindLb(t, 'rst')
  // Free sockets time out (and are destroyed) at half the LB's idle time. The naive error handling
  // is left as it was: with this setting it is never reached.
  const agent = pool(t, { timeout: LB_IDLE / 2 })
  await warmUp(t, naivePut, agent, origin, storage)
  const [upstreamSide] = storage.sockets
  await within(once(upstreamSide!, 'close'), 5000, 'the client to retire its idle socket')
  await until(() => lb.connections === 0, 5000, 'the LB to see the connection end')
  t.pass('the client closed its idle connection before the LB\'s idle time')

  clock.advance(LB_IDLE)   // nothing left for the LB to drop
  const res = await within(naivePut(agent, origin, 'second', body), 5000, 'PUT second')
  t.equal(res.status, 200, 'the next PUT works')
  t.equal(res.reusedSocket, false, 'on a new connection')
  t.equal(storage.connections, 2, 'the storage saw that second connection')
})
