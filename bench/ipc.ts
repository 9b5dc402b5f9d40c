// Benchmark plumbing: forked workers answering numbered requests over IPC, every wait bounded, and
// every child process killed on every exit path of the parent (and exiting by itself on disconnect).
import { fork, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export type Args = Record<string, unknown>
interface Request { id: number; cmd: string; args: Args }
interface Response { id: number; ok: boolean; value?: unknown; error?: string }

const live = new Set<ChildProcess>()
/** Processes that are not our children (HAProxy, started by a worker), killed with them all the same. */
const livePids = new Set<number>()

/** Kills every child still running; synchronous, so it can run in an 'exit' handler. */
export function killChildren(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill('SIGKILL') } catch { /* already gone */ }
    }
  }
  live.clear()
  for (const pid of livePids) {
    try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
  }
  livePids.clear()
}

/** Has killChildren kill this process too (a grandchild: its parent worker may be killed first). */
export function trackPid(pid: number): void { livePids.add(pid) }
/** The process ended normally: forget it, so that its pid, once reused, is never killed. */
export function untrackPid(pid: number): void { livePids.delete(pid) }

/** A forked worker (started with --expose-gc) that answers `request(cmd, args)`. */
export class Child {
  readonly proc: ChildProcess
  #nextId = 1
  #exited = false
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()

  constructor(readonly name: string, file: URL, args: string[] = []) {
    this.proc = fork(fileURLToPath(file), args, { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    live.add(this.proc)
    this.proc.on('message', (m: Response) => {
      const p = this.#pending.get(m.id)
      if (!p) return
      this.#pending.delete(m.id)
      clearTimeout(p.timer)
      if (m.ok) p.resolve(m.value)
      else p.reject(new Error(`${this.name}: ${m.error ?? 'failed'}`))
    })
    const fail = (why: string) => {
      this.#exited = true
      live.delete(this.proc)
      for (const p of this.#pending.values()) { clearTimeout(p.timer); p.reject(new Error(`${this.name} ${why}`)) }
      this.#pending.clear()
    }
    this.proc.on('exit', (code, signal) => fail(`exited (${signal ?? code})`))
    this.proc.on('error', err => fail(`failed: ${err.message}`))
  }

  get pid(): number { return this.proc.pid ?? -1 }

  request<T>(cmd: string, args: Args = {}, timeoutMs = 15_000): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`${this.name} is not running`))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve: v => resolve(v as T), reject, timer })
      this.proc.send({ id, cmd, args } satisfies Request)
    })
  }

  /** Disconnects (the worker exits on disconnect); SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 3_000): Promise<void> {
    if (this.#exited) return
    const exited = once(this.proc, 'exit')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs)
    try {
      if (this.proc.connected) this.proc.disconnect()
      await exited
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Worker side: answer requests with these handlers; exit when the parent goes away. */
export function serve(handlers: Record<string, (args: Args) => unknown>): void {
  if (!process.send) throw new Error('this file is a worker: start it with child_process.fork')
  process.on('disconnect', () => process.exit(0))
  process.on('message', (m: Request) => {
    void (async () => {
      let res: Response
      try {
        const h = handlers[m.cmd]
        if (!h) throw new Error(`unknown command ${m.cmd}`)
        res = { id: m.id, ok: true, value: await h(m.args) }
      } catch (err) {
        res = { id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }
      }
      if (process.connected) process.send!(res)
    })()
  })
}

/** Full GC (twice, so finalizers' garbage goes too) when the worker runs with --expose-gc. */
export function collectGarbage(): void {
  globalThis.gc?.()
  globalThis.gc?.()
}

/** Pins a process (all its threads) to the given CPU list, e.g. "1" or "0-2"; false if taskset failed. */
export function pin(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore', timeout: 5_000 })
    return true
  } catch {
    return false
  }
}
