// The CLI's partition cut | heal | list (coquin only).
import { type Command, Option } from 'commander'
import type { PartitionInfo } from '../../client/index.js'
import { formatTable } from '../table.js'
import { list, seconds, partitionHow } from '../format.js'
import { UsageError, withConn, type CliContext } from '../context.js'

export function registerPartitionCommands(program: Command, ctx: CliContext): void {
  const { out, printJSON, clientFor, action } = ctx
  const enc = encodeURIComponent

  const names = (v: string, acc: string[] = []): string[] => [...acc, ...v.split(',').map(x => x.trim()).filter(x => x !== '')]
  /** A time for the server: a number of ms stays a number, `10s` stays a string. */
  const time = (v: string): number | string => (/^\d+$/.test(v.trim()) ? Number(v) : v.trim())
  const partition = program.command('partition').aliases(['pt'])
    .description('cut, heal and list partitions: cuts of the paths through proxies (coquin only)')

  withConn(partition.command('cut')
    .description('cut the paths through proxies, for open links and new ones')
    .argument('<name>', 'partition name')
    .requiredOption('-p, --proxy <name>', 'a proxy whose paths are cut (repeatable, or comma-separated)', names)
    .addOption(new Option('--mode <mode>', 'blackhole: drop bytes, heal restores flow; hold: hold bytes, heal delivers them; ' +
      'reset: RST open links and new connects; refuse: refuse new connects only (default blackhole)').choices(['blackhole', 'hold', 'reset', 'refuse']))
    .addOption(new Option('--direction <direction>', 'blackhole only: upstream (client -> server), downstream or both (default both)')
      .choices(['both', 'upstream', 'downstream']))
    .option('--client <cidr>', 'cut only links from this client address or CIDR (repeatable, or comma-separated)', names)
    .option('--duration <time>', 'heal automatically after this long: ms, or 500ms, 10s, 1m')
    .option('--flap <up:down>', 'alternate cut (down) and healed (up), starting cut: e.g. 2s:1s'))
    .action(action(async (cmd, name: string) => {
      const o = cmd.opts<{ proxy: string[]; mode?: string; direction?: string; client?: string[]; duration?: string; flap?: string }>()
      let flap: { up: number | string; down: number | string } | undefined
      if (o.flap !== undefined) {
        const [up, down, extra] = o.flap.split(':')
        if (!up || !down || extra !== undefined) throw new UsageError(`--flap must be UP:DOWN, e.g. 2s:1s: ${o.flap}`)
        flap = { up: time(up), down: time(down) }
      }
      const { client, json } = clientFor(cmd)
      const p = await client.request<PartitionInfo>('POST', '/partitions', {
        name, proxies: o.proxy, ...(o.mode ? { mode: o.mode } : {}), ...(o.direction ? { direction: o.direction } : {}),
        ...(o.client?.length ? { clients: o.client } : {}), ...(o.duration !== undefined ? { duration: time(o.duration) } : {}),
        ...(flap ? { flap } : {}),
      })
      if (json) return printJSON(p)
      out(`cut partition ${p.name}: ${p.proxies.join(', ')} (${partitionHow(p)})\n`)
    }))

  withConn(partition.command('heal')
    .description('heal a partition: blackholed links flow again, new connections pass')
    .argument('<name>', 'partition name'), false)
    .action(action(async (cmd, name: string) => {
      const { client } = clientFor(cmd)
      await client.request('DELETE', `/partitions/${enc(name)}`)
      out(`healed partition ${name}\n`)
    }))

  withConn(partition.command('list').aliases(['ls'])
    .description('list the partitions'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<PartitionInfo[]>('GET', '/partitions')
      if (json) return printJSON(all)
      if (!all?.length) return out('no partitions: cut one with `coquin partition cut NAME -p PROXY`\n')
      out(formatTable(['NAME', 'PROXIES', 'MODE', 'DIRECTION', 'CLIENTS', 'STATE', 'HEALS IN'], all.map(p => [
        p.name, p.proxies.join(','), p.mode, p.direction, p.clients?.join(',') ?? 'all', p.state,
        p.remaining_ms !== undefined ? seconds(p.remaining_ms) : '-',
      ])))
    }))
}
