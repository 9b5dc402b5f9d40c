// The `coquin` client commands run in this process: a fresh program each time, output and exit code captured.
import { Command, CommanderError } from 'commander'
import { registerClientCommands } from '../../src/cli/commands.js'

export interface CliRun { code: number; stdout: string; stderr: string }

/** `onOut` sees stdout as it grows, with the Ctrl-C handler a command registered (`scenario run`). */
export async function runCli(args: string[], env: Record<string, string> = {},
  onOut?: (stdout: string, interrupt: () => void) => void): Promise<CliRun> {
  let stdout = '', stderr = '', code = 0
  let interrupt = () => {}
  const program = new Command('coquin').exitOverride()
    .configureOutput({ writeOut: s => { stdout += s }, writeErr: s => { stderr += s } })
  registerClientCommands(program, {
    stdout: { write: s => { stdout += s; onOut?.(stdout, interrupt) } }, stderr: { write: s => { stderr += s } }, env,
    setExitCode: c => { code = c },
    onInterrupt: fn => { interrupt = fn; return () => { interrupt = () => {} } },
  })
  try {
    await program.parseAsync(args, { from: 'user' })
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err
    code = err.exitCode
  }
  return { code, stdout, stderr }
}
