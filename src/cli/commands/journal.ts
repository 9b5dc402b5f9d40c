// The CLI's events (the journal; -f follows it) and links (a proxy's open links).
import type { Command } from 'commander'
import type { DroppedNotice, EventFilter, JournalEventType, LinkInfo } from '../../client/index.js'
import { formatTable } from '../table.js'
import { count, list, formatEvent } from '../format.js'
import { withConn, type CliContext } from '../context.js'

export function registerJournalCommands(program: Command, ctx: CliContext): void {
  const { out, printJSON, clientFor, action, io } = ctx
  const enc = encodeURIComponent

  withConn(program.command('events').aliases(['ev'])
    .description('show the journal: links opened and closed, faults applied, HTTP requests (coquin only)')
    .option('-f, --follow', 'keep printing events as they happen, until Ctrl-C')
    .option('--proxy <name>', 'only this proxy\'s events (repeatable, or comma-separated)', list)
    .option('--type <type>', 'only events of this type: link_open, link_close, fault, fault_acted, http_request, http_fallback, redis_command, pg_query, protocol_fallback (repeatable, or comma-separated)', list)
    .option('--since <id>', 'only events after this id', count('--since'))
    .option('--limit <n>', 'at most n events (the most recent, or the first after --since; with -f, stop after n)', count('--limit')))
    .action(action(async cmd => {
      const o = cmd.opts<{ follow?: boolean; proxy?: string[]; type?: string[]; since?: number; limit?: number }>()
      const { client, json } = clientFor(cmd)
      const filter: EventFilter = {
        ...(o.proxy?.length ? { proxy: o.proxy } : {}), ...(o.type?.length ? { type: o.type as JournalEventType[] } : {}),
        ...(o.since !== undefined ? { since: o.since } : {}), ...(o.limit !== undefined ? { limit: o.limit } : {}),
      }
      if (!o.follow) {
        const events = await client.events(filter)
        if (json) return printJSON(events)
        for (const e of events) out(formatEvent(e) + '\n')
        return
      }
      for await (const item of client.follow(filter)) {          // NDJSON with --json: one event per line
        if (item.type === 'dropped') {
          const d = item as DroppedNotice
          if (json) out(JSON.stringify(d) + '\n')
          else io.stderr.write(`coquin: ${d.dropped} events dropped (reading too slowly); \`coquin events --since ${d.after}\` shows what the journal still holds\n`)
        } else {
          out((json ? JSON.stringify(item) : formatEvent(item)) + '\n')
        }
      }
    }))

  withConn(program.command('links')
    .description('list the open links (connections) of a proxy, with bytes, idle time and faults (coquin only)')
    .argument('<proxy>', 'proxy name'))
    .action(action(async (cmd, name: string) => {
      const { client, json } = clientFor(cmd)
      const links = await client.request<LinkInfo[]>('GET', `/proxies/${enc(name)}/links`)
      if (json) return printJSON(links)
      if (!links?.length) return out(`no open links on ${name}\n`)
      out(formatTable(['ID', 'CLIENT', 'OPENED', 'IDLE_MS', 'UP', 'DOWN', 'TOXICS'], links.map(l => [
        String(l.id), l.client, new Date(l.opened_at).toISOString(), String(l.idle_ms),
        String(l.bytes_upstream), String(l.bytes_downstream), l.toxics.length ? l.toxics.join(', ') : '-',
      ])))
    }))

  // Partitions and scenarios (coquin only) ------------------------------------------------------
}
