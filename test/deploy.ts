// The container image, the compose example and the Kubernetes manifests, checked with what runs here:
// no container engine does, so each file is parsed, its configs are loaded with coquin's own loader, and
// the image's command line runs against the built CLI. The README says which is which.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { parseConfig } from '../src/control/config.js'
import { builtins } from '../behaviors/index.js'
import { withApi } from './helpers/api.js'
import { within } from './helpers/net.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const CLI = path.join(root, 'dist/src/cli/main.js')
const read = (f: string) => readFileSync(path.join(root, f), 'utf8')

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text.replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    .map(l => { const i = l.indexOf(' '); return { op: l.slice(0, i).toUpperCase(), args: l.slice(i + 1).trim() } })
}

t.test('Dockerfile: multi-stage, non-root, EXPOSE 8474, Toxiproxy-style ENTRYPOINT/CMD; what it copies exists', async t => {
  const ins = instructions(read('Dockerfile'))
  const froms = ins.filter(i => i.op === 'FROM')
  t.ok(froms.length >= 2, 'multi-stage')
  const last = ins.slice(ins.lastIndexOf(froms.at(-1)!))
  const user = last.find(i => i.op === 'USER')?.args
  t.ok(user !== undefined && user !== 'root' && user !== '0', `runs as ${user}`)
  t.ok(last.some(i => i.op === 'EXPOSE' && i.args.split(/\s+/).includes('8474')), 'EXPOSE 8474')
  const entrypoint = JSON.parse(last.find(i => i.op === 'ENTRYPOINT')!.args) as string[]
  const cmd = JSON.parse(last.find(i => i.op === 'CMD')!.args) as string[]
  t.same(entrypoint, ['node', '/app/dist/src/cli/main.js'])
  t.same(cmd, ['-host=0.0.0.0'], "Toxiproxy's image's CMD: listen on every interface inside the container")
  for (const c of ins.filter(i => i.op === 'COPY' && !i.args.startsWith('--from'))) {
    for (const src of c.args.split(/\s+/).slice(0, -1)) t.ok(existsSync(path.join(root, src)), `COPY ${src}: exists`)
  }
  const ignored = read('.dockerignore').split('\n')
  t.ok(ignored.includes('node_modules') && ignored.includes('dist'), '.dockerignore keeps the host\'s build out')
})

t.test("the image's command line, run here: ENTRYPOINT + CMD + a testcontainers-style -config", { skip: !existsSync(CLI) && 'build first' }, async t => {
  const ins = instructions(read('Dockerfile'))
  const entrypoint = JSON.parse(ins.filter(i => i.op === 'ENTRYPOINT').at(-1)!.args) as string[]
  const cmd = JSON.parse(ins.filter(i => i.op === 'CMD').at(-1)!.args) as string[]
  const dir = mkdtempSync(path.join(tmpdir(), 'coquin-image-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = path.join(dir, 'tc-toxiproxy.json')
  writeFileSync(config, JSON.stringify([{ name: 'redis', listen: '127.0.0.1:0', upstream: '127.0.0.1:6379', enabled: true }]))
  // the image's paths, on this machine; `-port=0` only so that a test never fights over 8474
  const argv = [...entrypoint.slice(1).map(a => a.replace('/app/', root)), ...cmd, `-config=${config}`, '-port=0']
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', d => { out += d })
  const url = await within(new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => { const m = /control API on (\S+),/.exec(out); if (m) resolve(m[1]!) })
    child.on('exit', code => reject(new Error(`exited ${code}`)))
  }), 15_000, 'the control API line')
  t.match(url, /^http:\/\/0\.0\.0\.0:\d+$/, 'listening on every interface, as in the image')
  const port = new URL(url).port
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  t.equal(health.status, 200, 'the HEALTHCHECK and probes\' /healthz')
  const proxies = await (await fetch(`http://127.0.0.1:${port}/proxies`)).json() as Record<string, { listen: string }>
  t.match(proxies, { redis: { listen: /^127\.0\.0\.1:\d+$/ } }, "the Toxiproxy JSON config's proxy")
  child.kill('SIGTERM')
  t.equal((await once(child, 'exit'))[0], 0, 'SIGTERM: exit 0 (docker stop)')
})

t.test('docker-compose example: coquin built from the repo, its mounted config loads, the app waits for its health', async t => {
  const compose = parse(read('examples/docker-compose/docker-compose.yaml')) as { services: Record<string, Record<string, unknown>> }
  const coquin = compose.services.coquin!
  t.match(coquin, { build: { context: '../..' } })
  t.ok(existsSync(path.join(root, 'examples/docker-compose', '../..', 'Dockerfile')), 'the build context has the Dockerfile')
  const command = coquin.command as string[]
  t.same(command.slice(0, 1), ['serve'])
  t.ok(command.includes('--watch'), 'the mounted config is re-applied live')
  const file = command[command.indexOf('--config') + 1]!
  t.equal(path.dirname(file), '/config')
  t.same(coquin.volumes, ['./:/config:ro'])
  const config = parseConfig(file, read(`examples/docker-compose/${path.basename(file)}`), builtins)
  t.same(config.proxies.map(p => [p.name, p.upstream]), [['redis', 'redis:6379'], ['postgres', 'postgres:5432']])
  for (const p of config.proxies) t.match(p.listen, /^0\.0\.0\.0:86\d\d$/, `${p.name}: on 0.0.0.0, in testcontainers' 8666-8697 range`)
  t.same(Object.keys(compose.services).sort(), ['app', 'coquin', 'postgres', 'redis'])
  t.match(compose.services.app, { depends_on: { coquin: { condition: 'service_healthy' } } })
})

t.test('Kubernetes manifests: ConfigMaps that load, --watch, /healthz probes, Prometheus scraping', async t => {
  for (const file of ['deploy/kubernetes/sidecar.yaml', 'deploy/kubernetes/staging.yaml']) {
    const docs = parseAllDocuments(read(file)).map(d => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: any })
    t.ok(docs.every(d => typeof d.kind === 'string' && d.metadata?.name), `${file}: every document has a kind and a name`)
    for (const cm of docs.filter(d => d.kind === 'ConfigMap')) {
      t.doesNotThrow(() => parseConfig(`${file}#${cm.metadata.name}`, cm.data!['coquin.yaml']!, builtins), `${file}: ConfigMap ${cm.metadata.name} is a valid config`)
    }
    for (const dep of docs.filter(d => d.kind === 'Deployment')) {
      const pod = dep.spec.template
      const c = (pod.spec.containers as any[]).find(x => String(x.image).startsWith('coquin'))
      t.ok(c, `${file}: a coquin container`)
      t.same(c.args.slice(0, 1), ['serve'])
      t.ok(c.args.includes('--watch') && c.args.includes('/config/coquin.yaml'), `${file}: the ConfigMap's file, re-applied live`)
      t.ok((c.volumeMounts as any[]).some(v => v.mountPath === '/config'), `${file}: the ConfigMap mounted at /config`)
      t.match(c.readinessProbe, { httpGet: { path: '/healthz', port: 'control' } })
      t.match(c.livenessProbe, { httpGet: { path: '/healthz', port: 'control' } })
      t.ok((c.ports as any[]).some(p => p.name === 'control' && p.containerPort === 8474))
      t.match(pod.metadata.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8474', 'prometheus.io/path': '/metrics' })
    }
  }
  const staging = parseAllDocuments(read('deploy/kubernetes/staging.yaml')).map(d => d.toJS() as { kind: string; spec: any })
  t.ok(staging.some(d => d.kind === 'ServiceMonitor'), 'a ServiceMonitor')
  t.ok(staging.some(d => d.kind === 'Service' && d.spec.clusterIP === 'None'), 'a headless Service for the fleet')
})

t.test('fleet.mjs applies one command to every address a name resolves to', { skip: !existsSync(CLI) && 'build first' }, async t => {
  const api = await withApi(t)
  await api.call('POST', '/proxies', { name: 'p', upstream: '127.0.0.1:1' })
  const script = path.join(root, 'deploy/kubernetes/fleet.mjs')
  const r = await new Promise<{ code: number | null; out: string }>(resolve => {
    const child = spawn(process.execPath, [script, `127.0.0.1:${api.port}`, '--', 'toxic', 'add', 'p', '-t', 'latency', '-a', 'latency=5'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { out += d })
    child.on('close', code => resolve({ code, out }))
  })
  t.equal(r.code, 0, r.out)
  t.match(r.out, /1 of 1 instances ok/)
  t.same(api.registry.get('p').faults.map(f => f.name), ['latency_downstream'])
  const usage = spawnSync(process.execPath, [script], { encoding: 'utf8' })
  t.equal(usage.status, 2)
  t.match(usage.stderr, /usage: fleet\.mjs/)
})
