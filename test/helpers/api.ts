// Fixtures for control-API tests: a registry and its API on 127.0.0.1, port 0, logs captured.
import { pino } from 'pino'
import { performance } from 'node:perf_hooks'
import { startApi, type ApiOptions } from '../../src/api/api.js'
import type { RegistryOptions } from '../../src/control/registry.js'
import { connect, readBytes, registry } from './net.js'

type T = { teardown(fn: () => unknown): void }

export interface LogLine { level: number; msg: string; [k: string]: unknown }
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const

export interface Answer {
  status: number
  headers: Headers
  text: string
  json: any                // whatever JSON came back: tests read any shape
}

/** One request with fetch; a Buffer body goes without Content-Type (as toxiproxy-java sends). */
export async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers }
  if (body !== undefined) init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
  const res = await fetch(base + path, init)
  const text = await res.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, headers: res.headers, text, json }
}

export async function withApi(t: T, opts: Partial<ApiOptions> = {}, regOpts: Partial<RegistryOptions> = {}) {
  const logs: LogLine[] = []
  const log = pino({ level: 'debug' }, { write: (s: string) => { logs.push(JSON.parse(s) as LogLine) } })
  const reg = await registry(t, { log, ...regOpts })
  const api = await startApi(reg, { version: '0.1.0-test', port: 0, log, ...opts })
  t.teardown(() => api.close())
  const port = Number(new URL(api.url).port)
  return {
    registry: reg, api, url: api.url, port, logs,
    call: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => call(api.url, method, path, body, headers),
  }
}

/** The port of a `host:port` or `[v6]:port` listen address. */
export const portOf = (listen: string): number => Number(listen.slice(listen.lastIndexOf(':') + 1))

/** Time for one echo of 4 bytes through a fresh connection to port. */
export async function echoTime(t: T, port: number, host = '127.0.0.1'): Promise<number> {
  const c = await connect(t, port, { host })
  const start = performance.now()
  c.write('ping')
  const got = await readBytes(c, 4)
  const ms = performance.now() - start
  c.destroy()
  if (got.toString() !== 'ping') throw new Error(`echo returned ${JSON.stringify(got.toString())}`)
  return ms
}
