// The CLI's toxic add | update | remove: faults on a proxy, as toxiproxy-cli's, plus coquin's --both.
import { type Command, Option } from 'commander'
import type { Fault } from '../../client/index.js'
import { attribute, toxicity, formatAttributes, streamOf } from '../format.js'
import { UsageError, withConn, type CliContext } from '../context.js'

export function registerToxicCommands(program: Command, ctx: CliContext): void {
  const { out, printJSON, clientFor, action } = ctx
  const enc = encodeURIComponent

  const toxic = program.command('toxic').aliases(['t'])
    .description('add, update or remove a toxic (a fault) on a proxy')
  const nameOption = (dflt = '') => new Option('-n, --name <name>', `toxic name${dflt}`)
  const hidden = (flags: string) => new Option(flags).hideHelp()
  const attrOption = () => new Option('-a, --attribute <key=value>',
    'an attribute, repeatable; numbers and true/false are sent as such').argParser(attribute)
  const toxOption = (dflt = '') => new Option('--tox, --toxicity <f>', `share of connections it hits, 0 to 1${dflt}`).argParser(toxicity)

  withConn(toxic.command('add').aliases(['a'])
    .description('add a toxic to a proxy')
    .argument('<proxy>', 'proxy name')
    .requiredOption('-t, --type <type>', 'toxic type: latency, ... (`coquin types` lists them)')
    .addOption(nameOption(' (default: <type>_<stream>)'))
    .addOption(hidden('--toxicName <name>'))
    .addOption(toxOption(' (default: 1)'))
    .addOption(attrOption())
    .option('-u, --upstream', 'on the client -> server stream')
    .option('-d, --downstream', 'on the server -> client stream (the default)')
    .option('--both', 'on both streams (coquin only)')
    .addOption(new Option('-s, --stream <stream>', 'upstream, downstream or both').hideHelp()))
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ type: string; name?: string; toxicName?: string; toxicity?: number; attribute?: Record<string, unknown>
        upstream?: boolean; downstream?: boolean; both?: boolean; stream?: string }>()
      const { client, json } = clientFor(cmd)
      const stream = streamOf(o)
      const name = o.name ?? o.toxicName
      const t = await client.request<Fault>('POST', `/proxies/${enc(proxy)}/toxics`, {
        type: o.type, ...(name ? { name } : {}), ...(stream ? { stream } : {}),
        ...(o.toxicity !== undefined ? { toxicity: o.toxicity } : {}), attributes: o.attribute ?? {},
      })
      if (json) return printJSON(t)
      out(`added toxic ${t.name} to ${proxy}: ${t.type} on ${t.stream}, toxicity ${t.toxicity}, ${formatAttributes(t.attributes)}\n`)
    }))

  withConn(toxic.command('update').aliases(['u'])
    .description('change a toxic\'s toxicity or attributes (others keep their values)')
    .argument('<proxy>', 'proxy name')
    .addOption(nameOption())
    .addOption(hidden('--toxicName <name>'))
    .addOption(toxOption())
    .addOption(attrOption()))
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ name?: string; toxicName?: string; toxicity?: number; attribute?: Record<string, unknown> }>()
      const name = o.name ?? o.toxicName
      if (!name) throw new UsageError('toxic update: give the toxic\'s name with -n NAME')
      if (o.toxicity === undefined && o.attribute === undefined) throw new UsageError('toxic update: nothing to change: give --tox F and/or -a key=value')
      const { client, json } = clientFor(cmd)
      const t = await client.request<Fault>('POST', `/proxies/${enc(proxy)}/toxics/${enc(name)}`, {
        ...(o.toxicity !== undefined ? { toxicity: o.toxicity } : {}), ...(o.attribute ? { attributes: o.attribute } : {}),
      })
      if (json) return printJSON(t)
      out(`updated toxic ${t.name} on ${proxy}: toxicity ${t.toxicity}, ${formatAttributes(t.attributes)}\n`)
    }))

  withConn(toxic.command('remove').aliases(['r', 'rm', 'delete', 'd'])
    .description('remove a toxic from a proxy (what it holds is passed on)')
    .argument('<proxy>', 'proxy name')
    .addOption(nameOption())
    .addOption(hidden('--toxicName <name>')), false)
    .action(action(async (cmd, proxy: string) => {
      const o = cmd.opts<{ name?: string; toxicName?: string }>()
      const name = o.name ?? o.toxicName
      if (!name) throw new UsageError('toxic remove: give the toxic\'s name with -n NAME')
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/proxies/${enc(proxy)}/toxics/${enc(name)}`)
      out(`removed toxic ${name} from ${proxy}\n`)
    }))
}
