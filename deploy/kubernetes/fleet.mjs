#!/usr/bin/env node
// Runs one coquin CLI command against every coquin instance behind a name: a headless Service's DNS
// name resolves to one address per ready pod. coquin has no cluster manager of its own; the
// orchestrator's discovery is the list of instances.
//
//   node deploy/kubernetes/fleet.mjs coquin-pods.staging.svc.cluster.local:8474 -- toxic add s3 -t http_status -a status=503
//   node deploy/kubernetes/fleet.mjs coquin-pods.staging:8474 -- reset
//
// Each instance gets the command with COQUIN_URL=http://ADDRESS:PORT (COQUIN_TOKEN passes through);
// what each printed is shown under its address. Exit code: 0 if every instance succeeded, else 1.
import { lookup } from 'node:dns/promises'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const [target, sep, ...command] = process.argv.slice(2)
if (!target || sep !== '--' || command.length === 0) {
  process.stderr.write('usage: fleet.mjs NAME[:PORT] -- COQUIN-COMMAND...\n')
  process.exit(2)
}
const m = /^(.*?)(?::(\d+))?$/.exec(target)
const name = m[1]
const port = m[2] ?? '8474'
const local = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url))
const cli = process.env.COQUIN_CLI ?? (existsSync(local) ? local : null)
const addresses = [...new Set((await lookup(name, { all: true })).map(a => (a.family === 6 ? `[${a.address}]` : a.address)))]
let failed = 0
for (const address of addresses) {
  const url = `http://${address}:${port}`
  const r = cli
    ? spawnSync(process.execPath, [cli, ...command], { env: { ...process.env, COQUIN_URL: url }, encoding: 'utf8' })
    : spawnSync('coquin', command, { env: { ...process.env, COQUIN_URL: url }, encoding: 'utf8' })
  process.stdout.write(`== ${url}: ${r.status === 0 ? 'ok' : `exit ${r.status ?? r.error?.message}`}\n${r.stdout ?? ''}${r.stderr ?? ''}`)
  if (r.status !== 0) failed++
}
process.stdout.write(`${addresses.length - failed} of ${addresses.length} instances ok\n`)
process.exit(failed === 0 ? 0 : 1)
