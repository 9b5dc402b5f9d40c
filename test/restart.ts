// Restarts as an operator does them: `coquin serve -c config.yaml` (the built CLI, in a child process),
// SIGTERM, and the same command again. The config is the state: the second run serves the same proxies
// on the same ports with the same toxics, and whatever was changed through the API meanwhile is gone.
// A port already taken (a proxy's or the control port) stops coquin with one clear line naming the address.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { echoServer, readBytes, within } from './helpers/net.js'

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))
const skip = !existsSync(CLI) && 'build first: npx tsc -p tsconfig.json'
/** Starting coquin loads its modules: a few seconds on a busy 2-core machine. */
const START_MS = 15_000

interface Serving {
  child: ChildProcess
  api: string
  exited: Promise<number | null>
  stderr: () => string
}

/** Starts `coquin serve ARGS --port 0` and waits for its "control API on URL" line. */
async function serve(t: Test, args: string[]): Promise<Serving> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args, '--port', '0', '--log-format', 'json', '--grace', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  let err = ''
  child.stderr!.on('data', d => { err += d })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const api = await within(new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', d => {
      out += d
      const m = /control API on (http:\/\/\S+?),/.exec(out)
      if (m) resolve(m[1]!)
    })
    void exited.then(code => reject(new Error(`coquin exited (${code}) before it served: ${err}`)))
  }), START_MS, 'coquin to start')
  return { child, api, exited, stderr: () => err }
}

/** Runs `coquin serve ARGS` expecting it to fail: its exit code and output. */
async function failing(t: Test, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', d => { stdout += d })
  child.stderr!.on('data', d => { stderr += d })
  const [code] = await within(once(child, 'exit'), START_MS, 'coquin to exit')
  return { code: code as number | null, stdout, stderr }
}

async function stop(s: Serving): Promise<number | null> {
  s.child.kill('SIGTERM')
  return within(s.exited, 5000, 'exit after SIGTERM')
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => {
    const s = net.createServer().listen(0, '127.0.0.1')
    await once(s, 'listening')
    return s
  }))
  const ports = servers.map(s => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map(s => new Promise(r => s.close(r))))
  return ports
}

const getProxies = async (api: string): Promise<Record<string, any>> => (await fetch(`${api}/proxies`)).json() as Promise<Record<string, any>>

/** A round trip through a proxy to the echo upstream. */
async function echoes(t: Test, port: number, what: string): Promise<void> {
  const c = net.connect(port, '127.0.0.1')
  t.teardown(() => c.destroy())
  await within(once(c, 'connect'), 5000, `connect to ${what}`)
  c.write('ping')
  t.equal((await within(readBytes(c, 4), 5000, `echo through ${what}`)).toString(), 'ping', `${what} forwards`)
  c.destroy()
}

/** How a connection attempt to a port ends: 'connected' or the error's code. */
const dial = (port: number) => new Promise<string>(resolve => {
  const c = net.connect(port, '127.0.0.1')
  c.on('connect', () => { c.destroy(); resolve('connected') })
  c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
})

async function configFile(t: Test, echoPort: number): Promise<{ file: string; ports: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'coquin-restart-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ports = await freePorts(2)
  const file = join(dir, 'coquin.yaml')
  writeFileSync(file, `proxies:
  - name: cache
    listen: 127.0.0.1:${ports[0]}
    upstream: 127.0.0.1:${echoPort}
    toxics:
      - { type: latency, stream: downstream, toxicity: 0.5, attributes: { latency: 5, jitter: 2 } }
  - name: api
    listen: 127.0.0.1:${ports[1]}
    upstream: 127.0.0.1:${echoPort}
    toxics:
      - { name: slow, type: bandwidth, stream: upstream, attributes: { rate: 1000 } }
      - { type: slicer, stream: both, attributes: { average_size: 64, size_variation: 16, delay: 10 } }
settings:
  seed: 7
`)
  return { file, ports }
}

/** stderr lines that report a problem: plain text, or JSON log lines at warn (40) or above. */
const problemLines = (stderr: string) => stderr.split('\n').filter(l => l !== '' && !/^\{"level":(10|20|30),/.test(l))

// One flow, as each start of the CLI costs seconds here: start, SIGTERM, start again; while the second
// runs, two more try to take its proxy ports and its control port.
t.test('SIGTERM, then the same config again: the same proxies, on the same ports, with the same toxics', { skip }, async t => {
  const echo = await echoServer(t)
  const { file, ports } = await configFile(t, echo.port)

  const first = await serve(t, ['-c', file])
  const before = await getProxies(first.api)
  t.same(Object.keys(before).sort(), ['api', 'cache'])
  t.equal(before.cache.listen, `127.0.0.1:${ports[0]}`, 'cache listens where the config says')
  t.equal(before.api.listen, `127.0.0.1:${ports[1]}`, 'api listens where the config says')
  t.same(before.cache.toxics.map((x: { name: string }) => x.name), ['latency_downstream'])
  t.same(before.api.toxics.map((x: { name: string }) => x.name).sort(), ['slicer_both', 'slow'])
  await echoes(t, ports[0]!, 'cache')
  await echoes(t, ports[1]!, 'api')
  // A change through the API is not part of the config: the restart must not bring it back.
  const added = await fetch(`${first.api}/proxies/cache/toxics`, { method: 'POST', body: JSON.stringify({ name: 'extra', type: 'latency', attributes: { latency: 1 } }) })
  t.equal(added.status, 200, 'a toxic added through the API')
  t.equal(await stop(first), 0, 'exit 0 on SIGTERM')
  t.same([await dial(ports[0]!), await dial(ports[1]!)], ['ECONNREFUSED', 'ECONNREFUSED'], 'both ports released')

  const second = await serve(t, ['-c', file])
  const after = await getProxies(second.api)
  t.same(after, before, 'GET /proxies is the same as after the first start')
  await echoes(t, ports[0]!, 'cache, restarted')
  await echoes(t, ports[1]!, 'api, restarted')
  t.notMatch(first.stderr() + second.stderr(), /"level":(4|5|6)0/, 'nothing logged at warn or above')

  const apiPort = new URL(second.api).port
  const [sameConfig, sameApi] = await Promise.all([failing(t, ['-c', file, '--port', '0']), failing(t, ['--port', apiPort])])

  await t.test('a listen port in use: coquin exits non-zero with one clear line naming the address', async t => {
    const { code, stdout, stderr } = sameConfig
    t.not(code, 0, `exits non-zero (${code})`)
    t.notMatch(stdout, /control API on/, 'never claims to serve')
    t.comment(`what it prints on stderr:\n${stderr}`)
    const lines = problemLines(stderr)
    const line = lines.find(l => l.startsWith('coquin: '))
    t.equal(line, `coquin: cache: listen tcp 127.0.0.1:${ports[0]}: bind: address already in use; api: listen tcp 127.0.0.1:${ports[1]}: bind: address already in use`,
      'a line naming every address in use and the cause')
    t.same(lines, [line], 'that line and no other problem reported')
  })

  await t.test('the control port in use: coquin exits non-zero with one line naming the address', async t => {
    const { code, stderr } = sameApi
    t.not(code, 0, `exits non-zero (${code})`)
    const lines = problemLines(stderr)
    t.equal(lines.length, 1, `one line: ${JSON.stringify(lines)}`)
    t.equal(lines[0], `coquin: listen tcp 127.0.0.1:${apiPort}: bind: address already in use`, 'naming the address and the cause, as for a proxy')
  })

  t.same(await getProxies(second.api), before, 'the running coquin is untouched by both attempts')
  await echoes(t, ports[0]!, 'cache, still')
  t.equal(await stop(second), 0, 'exit 0 on SIGTERM')
  t.same([await dial(ports[0]!), await dial(ports[1]!)], ['ECONNREFUSED', 'ECONNREFUSED'], 'both ports released again')
})
