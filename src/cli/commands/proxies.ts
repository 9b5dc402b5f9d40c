// The CLI's list, inspect, create, toggle, delete, reset: a running server's proxies, named as in toxiproxy-cli.
import { type Command, Option } from 'commander'
import type { ProxyInfo } from '../../client/index.js'
import { formatPairs, formatTable } from '../table.js'
import { list, toxicsTable } from '../format.js'
import { withConn, type CliContext } from '../context.js'
import { PROTOCOLS } from '../../protocols/index.js'

export function registerProxyCommands(program: Command, ctx: CliContext): void {
  const { out, printJSON, clientFor, action } = ctx
  const enc = encodeURIComponent

  withConn(program.command('list').aliases(['ls', 'l', 'li'])
    .description('list the proxies of a running server'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<Record<string, ProxyInfo>>('GET', '/proxies')
      if (json) return printJSON(all)
      const proxies = Object.values(all ?? {}).sort((a, b) => a.name.localeCompare(b.name))
      if (proxies.length === 0) return out('no proxies: add one with `coquin create NAME -l ADDR -u ADDR`\n')
      out(formatTable(['NAME', 'LISTEN', 'UPSTREAM', 'ENABLED', 'TOXICS'], proxies.map(p => [
        p.name, p.listen, p.upstream, String(p.enabled),
        p.toxics?.length ? p.toxics.map(t => t.name).join(', ') : '-',
      ])))
    }))

  withConn(program.command('inspect').aliases(['i', 'ins'])
    .description('show a proxy and its toxics')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const p = await client.request<ProxyInfo>('GET', `/proxies/${enc(name)}`)
      if (json) return printJSON(p)
      out(formatPairs([
        ['name', p.name], ['listen', p.listen], ['upstream', p.upstream], ['enabled', String(p.enabled)],
        ...(p.protocol ? [['protocol', p.protocol] as const] : []),
      ]))
      out(p.toxics?.length ? '\n' + toxicsTable(p.toxics) : 'toxics    none\n')
    }))

  withConn(program.command('create').aliases(['c', 'new'])
    .description('create a proxy')
    .argument('<proxy>', 'proxy name')
    .option('-l, --listen <addr>', 'address to listen on, host:port (default: the server picks, 127.0.0.1:0 on coquin)')
    .requiredOption('-u, --upstream <addr>', 'address to forward to, host:port')
    .addOption(new Option('--protocol <protocol>', 'tcp; http, redis or postgres for their faults (coquin only)').choices([...PROTOCOLS]))
    .option('--disabled', 'create it disabled'))
    .action(action(async (cmd, name: string) => {
      const o = cmd.opts<{ listen?: string; upstream: string; protocol?: string; disabled?: boolean }>()
      const { client, json } = clientFor(cmd)
      const p = await client.request<ProxyInfo>('POST', '/proxies', {
        name, upstream: o.upstream, ...(o.listen !== undefined ? { listen: o.listen } : {}),
        ...(o.protocol ? { protocol: o.protocol } : {}), ...(o.disabled ? { enabled: false } : {}),
      })
      if (json) return printJSON(p)
      out(`created proxy ${p.name}: ${p.listen} -> ${p.upstream}${p.enabled ? '' : ' (disabled)'}\n`)
    }))

  withConn(program.command('toggle').aliases(['tog'])
    .description('enable a disabled proxy, disable an enabled one (closing its connections)')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const before = await client.request<ProxyInfo>('GET', `/proxies/${enc(name)}`)
      const p = await client.request<ProxyInfo>('POST', `/proxies/${enc(name)}`, { enabled: !before.enabled })
      if (json) return printJSON(p)
      out(`proxy ${p.name} ${p.enabled ? 'enabled' : 'disabled'}\n`)
    }))

  withConn(program.command('delete').aliases(['d', 'rm'])
    .description('delete a proxy, closing its connections')
    .argument('<proxy>', 'proxy name'), false)
    .action(action(async (cmd, name: string) => {
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/proxies/${enc(name)}`)
      out(`deleted proxy ${name}\n`)
    }))

  withConn(program.command('reset')
    .description('enable every proxy and remove every toxic'), false)
    .action(action(async cmd => {
      const { client } = clientFor(cmd)
      await client.request('POST', '/reset')
      out('reset: every proxy enabled, every toxic removed\n')
    }))
}
