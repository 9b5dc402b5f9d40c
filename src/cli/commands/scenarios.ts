// The CLI's scenario run | check | list | stop (coquin only).
import type { Command } from 'commander'
import type { ScenarioInfo } from '../../client/index.js'
import { formatTable } from '../table.js'
import { list, seconds } from '../format.js'
import { UsageError, withConn, type CliContext } from '../context.js'

export function registerScenarioCommands(program: Command, ctx: CliContext): void {
  const { out, printJSON, clientFor, action, io } = ctx
  const enc = encodeURIComponent

  const scenario = program.command('scenario').aliases(['sc'])
    .description('run a timeline of faults, partitions and proxy states (coquin only)')

  withConn(scenario.command('run')
    .description('run a scenario file against the server, showing each step; Ctrl-C stops it and undoes what it applied')
    .argument('<file>', 'scenario file (YAML)'))
    .action(action(async (cmd, file: string) => {
      let text: string
      try {
        const { readFile } = await import('node:fs/promises')
        text = await readFile(file, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read scenario ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
      }
      const { client, json } = clientFor(cmd)
      let info = await client.request<ScenarioInfo>('POST', '/scenarios', { yaml: text, file })
      const path = `/scenarios/${enc(info.id)}`
      if (!json) {
        out(`scenario ${info.name} (id ${info.id}): ${info.steps} step${info.steps === 1 ? '' : 's'}` +
          `${info.repeat > 1 ? ` x ${info.repeat} passes` : ''}, ${seconds(info.duration_ms)}; Ctrl-C stops it and undoes what it applied\n`)
      }
      let seen = 0                                   // pass * steps + step of the last record printed
      const show = () => {
        for (const r of info.log) {
          const key = (r.pass - 1) * info.steps + r.step
          if (key <= seen) continue
          seen = key
          if (json) continue
          const where = `step ${r.step}/${info.steps}${info.repeat > 1 ? ` (pass ${r.pass}/${info.repeat})` : ''}`
          out(`[${seconds(r.at_ms).padStart(7)}] ${where}: ${r.did}${r.error ? ` FAILED: ${r.error}` : ''}  (${seconds(Math.max(0, info.duration_ms - r.at_ms))} left)\n`)
        }
      }
      let interrupted = false
      let wake: (() => void) | undefined
      const off = io.onInterrupt(() => { interrupted = true; wake?.() })
      try {
        for (;;) {
          show()
          if (info.state !== 'running') break
          if (interrupted) {
            await client.request('DELETE', path)
            info = await client.request<ScenarioInfo>('GET', path)
            show()
            break
          }
          await new Promise<void>(resolve => {
            const timer = setTimeout(() => { wake = undefined; resolve() }, Math.min(100, Math.max(1, info.remaining_ms)))
            wake = () => { clearTimeout(timer); wake = undefined; resolve() }
          })
          if (!interrupted) info = await client.request<ScenarioInfo>('GET', path)
        }
      } finally {
        off()
      }
      if (json) printJSON(info)
      else if (info.state === 'done') out(`scenario ${info.name} done in ${seconds(info.elapsed_ms)}\n`)
      else {
        const undone = info.undone?.length ? info.undone.join('; ') : 'nothing'
        out(`scenario ${info.name} ${info.state}${interrupted ? ' (interrupted)' : ''} after ${seconds(info.elapsed_ms)}; undone: ${undone}\n`)
      }
      if (info.state === 'failed') throw new UsageError(`scenario ${info.name} failed: ${info.error ?? 'unknown error'}`)
      if (info.state === 'stopped') io.setExitCode(interrupted ? 130 : 1)
    }))

  scenario.command('check')
    .description('check a scenario file against the schema of this coquin\'s behaviors, without a server')
    .argument('<file>', 'scenario file (YAML)')
    .action(action(async (_cmd, file: string) => {
      const [{ builtins }, { loadScenario }] = await Promise.all([import('../../../behaviors/index.js'), import('../../control/scenario.js')])
      let s
      try {
        s = await loadScenario(file, builtins)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
      out(`${file}: ok: scenario ${s.name}, ${s.steps.length} step${s.steps.length === 1 ? '' : 's'}` +
        `${s.repeat > 1 ? ` x ${s.repeat} passes` : ''}, ${seconds(s.repeat * s.duration)}\n`)
    }))

  withConn(scenario.command('list').aliases(['ls'])
    .description('list running scenarios and the last few finished'))
    .action(action(async cmd => {
      const { client, json } = clientFor(cmd)
      const all = await client.request<ScenarioInfo[]>('GET', '/scenarios')
      if (json) return printJSON(all)
      if (!all?.length) return out('no scenarios: run one with `coquin scenario run FILE`\n')
      out(formatTable(['ID', 'NAME', 'STATE', 'STEPS DONE', 'ELAPSED', 'LEFT', 'NEXT'], all.map(r => [
        r.id, r.name, r.state, `${r.log.length}/${r.steps * r.repeat}`, seconds(r.elapsed_ms), seconds(r.remaining_ms),
        r.next ? `${seconds(r.next.at_ms)}: ${r.next.does}` : '-',
      ])))
    }))

  withConn(scenario.command('stop')
    .description('stop a running scenario and undo what it applied')
    .argument('<id>', 'scenario id (`coquin scenario list`)'))
    .action(action(async (cmd, id: string) => {
      const { client, json } = clientFor(cmd)
      await client.request('DELETE', `/scenarios/${enc(id)}`)
      const info = await client.request<ScenarioInfo>('GET', `/scenarios/${enc(id)}`).catch(() => undefined)
      if (json) return printJSON(info ?? null)
      out(`stopped scenario ${id}${info ? `; undone: ${info.undone?.length ? info.undone.join('; ') : 'nothing'}` : ''}\n`)
    }))
}
