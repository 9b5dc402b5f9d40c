// The CLI's types: the fault types built into this coquin, with their attributes and defaults.
import type { Command } from 'commander'
import { formatTable } from '../table.js'
import { attribute, count, list, shorten, formatValue } from '../format.js'
import type { CliContext } from '../context.js'

export function registerTypesCommand(program: Command, ctx: CliContext): void {
  const { out, printJSON, action } = ctx

  program.command('types')
    .description('list the toxic types built into this coquin, with their attributes and defaults')
    .option('--json', 'print type, summary and attribute schema as JSON')
    .action(action(async cmd => {
      const { builtins } = await import('../../../behaviors/index.js')
      const attrs = (b: (typeof builtins)[number]) =>
        Object.entries(b.attributes.properties).map(([k, s]) => [k, (s as { default?: unknown }).default] as const)
      if (cmd.opts().json) {
        return printJSON(builtins.map(b => ({ type: b.type, summary: b.summary, attributes: b.attributes })))
      }
      out(formatTable(['TYPE', 'ATTRIBUTES (DEFAULTS)', 'SUMMARY'], builtins.map(b => [
        b.type, attrs(b).map(([k, d]) => d === undefined ? k : `${k}=${shorten(formatValue(d), 32)}`).join(' ') || '-', b.summary,
      ])))
      out('every type also takes after=0 (skip the first N connections) and count=0 (stop after N; 0 = no limit)\n')
    }))
}
