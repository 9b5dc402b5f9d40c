// The CLI commands that drive a running coquin (or Toxiproxy) through its control API, named as in
// toxiproxy-cli: list, inspect, create, toggle, delete, toxic add|update|remove, reset, plus types.
// Tables for people, --json for scripts (the server's JSON as it came). Errors go to stderr as
// `coquin: <message>` with exit code 1 (process.exitCode: nothing here calls process.exit). Output,
// environment and exit code go through ClientIO, so tests can run the commands in-process.
// Each group of commands is a module under src/cli/commands/; what they share is in context.ts (output,
// the client, error handling) and format.ts (option parsers, tables and formats).
import type { Command } from 'commander'
import { cliContext, DEFAULT_URL, type ClientIO } from './context.js'
import { registerProxyCommands } from './commands/proxies.js'
import { registerToxicCommands } from './commands/toxics.js'
import { registerJournalCommands } from './commands/journal.js'
import { registerPartitionCommands } from './commands/partitions.js'
import { registerScenarioCommands } from './commands/scenarios.js'
import { registerTypesCommand } from './commands/types.js'

export type { ClientIO } from './context.js'
export { formatEvent, parseValue } from './format.js'

export function registerClientCommands(program: Command, ioOverrides: Partial<ClientIO> = {}): void {
  const ctx = cliContext(ioOverrides)
  if (!program.options.some(o => o.long === '--control')) {
    program.option('--control <url>', `control API URL for the client commands (env COQUIN_URL or TOXIPROXY_URL, default ${DEFAULT_URL})`)
  }
  registerProxyCommands(program, ctx)
  registerToxicCommands(program, ctx)
  registerJournalCommands(program, ctx)
  registerPartitionCommands(program, ctx)
  registerScenarioCommands(program, ctx)
  registerTypesCommand(program, ctx)
}
