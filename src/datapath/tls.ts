// TLS on a proxy: terminate TLS from clients (so that HTTP faults see HTTPS traffic) with a given
// certificate or a throwaway self-signed one, and/or originate TLS to the upstream. The link in
// between is the same as ever: one upstream connection per client connection, bytes in the clear.
import { X509Certificate } from 'node:crypto'
import { readRegularFile } from '../core/files.js'
import path from 'node:path'
import tls from 'node:tls'
import type net from 'node:net'
import { InvalidRequestError } from '../core/errors.js'

/** `tls:` on a proxy, as configs and the API give it. Files are paths, or PEM text inline. */
export interface TlsSpec {
  /** Terminate TLS from clients. `{}` or `true`: with a throwaway self-signed certificate. */
  readonly listen?: { readonly cert?: string; readonly key?: string; readonly handshake_timeout?: number }
  /** Originate TLS to the upstream. `{}` or `true`: verify it against Node's CAs, SNI = the upstream host. */
  readonly upstream?: { readonly servername?: string; readonly ca?: string; readonly insecure?: boolean }
}

/** What links use: ready-made contexts, files read and certificates generated. */
export interface ProxyTls {
  readonly spec: TlsSpec
  readonly listen?: { readonly context: tls.SecureContext; readonly cert: string; readonly handshakeTimeoutMs: number }
  readonly upstream?: { readonly servername?: string; readonly ca?: string; readonly rejectUnauthorized: boolean }
}

/** A client that connects and never finishes its handshake is dropped after this long. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
const MAX_TIMEOUT_MS = 3_600_000

const FIELDS = { listen: ['cert', 'key', 'handshake_timeout'], upstream: ['servername', 'ca', 'insecure'] } as const

/** Checks the shape of `tls:` (files are read later, by loadTls); `true` on a side means `{}`. */
export function checkTlsSpec(value: unknown, where = ''): TlsSpec | undefined {
  if (value === undefined || value === null) return undefined
  const bad = (msg: string): never => { throw new InvalidRequestError(`tls${msg}${where}`) }
  if (typeof value !== 'object' || Array.isArray(value)) bad(' must be an object with listen and/or upstream')
  const v = value as Record<string, unknown>
  for (const k of Object.keys(v)) if (k !== 'listen' && k !== 'upstream') bad(`: unknown field ${k} (give listen and/or upstream)`)
  const side = (name: 'listen' | 'upstream'): Record<string, unknown> | undefined => {
    const s = v[name]
    if (s === undefined || s === null || s === false) return undefined
    if (s === true) return {}
    if (typeof s !== 'object' || Array.isArray(s)) bad(`.${name} must be an object or true`)
    for (const k of Object.keys(s as object)) if (!(FIELDS[name] as readonly string[]).includes(k)) bad(`.${name}: unknown field ${k}`)
    return s as Record<string, unknown>
  }
  const listen = side('listen')
  const upstream = side('upstream')
  const str = (s: Record<string, unknown>, sideName: string, k: string): string | undefined => {
    const x = s[k]
    if (x === undefined || x === null) return undefined
    if (typeof x !== 'string' || x === '') bad(`.${sideName}.${k} must be a non-empty string`)
    return x as string
  }
  const out: { listen?: TlsSpec['listen']; upstream?: TlsSpec['upstream'] } = {}
  if (listen) {
    const cert = str(listen, 'listen', 'cert'), key = str(listen, 'listen', 'key')
    if ((cert === undefined) !== (key === undefined)) bad('.listen needs both cert and key (or neither, for a self-signed certificate)')
    const t = listen.handshake_timeout
    if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > MAX_TIMEOUT_MS)) {
      bad(`.listen.handshake_timeout must be an integer number of ms from 1 to ${MAX_TIMEOUT_MS}`)
    }
    out.listen = { ...(cert ? { cert, key } : {}), ...(t !== undefined ? { handshake_timeout: t as number } : {}) }
  }
  if (upstream) {
    const servername = str(upstream, 'upstream', 'servername'), ca = str(upstream, 'upstream', 'ca')
    const insecure = upstream.insecure
    if (insecure !== undefined && typeof insecure !== 'boolean') bad('.upstream.insecure must be a boolean')
    out.upstream = { ...(servername ? { servername } : {}), ...(ca ? { ca } : {}), ...(insecure !== undefined ? { insecure: insecure as boolean } : {}) }
  }
  return out.listen || out.upstream ? out : undefined
}

const isPem = (s: string) => s.includes('-----BEGIN ')

/** A PEM file coquin reads: at most this large. */
export const MAX_PEM_BYTES = 1024 * 1024
/** And read within this long (a file on a hung network mount must not hold an API call forever). */
const PEM_READ_TIMEOUT_MS = 5_000

/**
 * Reads a PEM given inline or as a file (relative paths against `baseDir`). Files are read without
 * blocking the event loop and only if they are regular files (a FIFO or a device would block forever),
 * of at most MAX_PEM_BYTES, holding PEM. Every failure has the same words, so that an API client cannot
 * probe which paths exist on coquin's machine; the cause is kept on the error (`cause`) for the logs.
 */
async function pem(field: string, value: string, baseDir: string): Promise<string> {
  if (isPem(value)) return value
  const refuse = (cause: unknown): never => {
    throw new InvalidRequestError(`tls.${field}: ${value} is not a readable PEM file (a regular file of at most 1 MiB)`).because(cause)
  }
  let timer: NodeJS.Timeout | undefined
  try {
    const read = readRegularFile(path.resolve(baseDir, value), MAX_PEM_BYTES)
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('read timed out')), PEM_READ_TIMEOUT_MS) })
    const text = await Promise.race([read, timeout])
    return isPem(text) ? text : refuse(new Error('no PEM block'))
  } catch (err) {
    return refuse(err)
  } finally {
    clearTimeout(timer)
  }
}


/** Reads the files and builds the contexts; a missing or bad certificate is a 400, at creation time. */
export async function loadTls(spec: TlsSpec, baseDir = process.cwd()): Promise<ProxyTls> {
  let listen: ProxyTls['listen']
  if (spec.listen) {
    const pair = spec.listen.cert && spec.listen.key
      ? { cert: await pem('listen.cert', spec.listen.cert, baseDir), key: await pem('listen.key', spec.listen.key, baseDir) }
      : await throwawayCertificate()
    let context: tls.SecureContext
    try {
      context = tls.createSecureContext(pair)
    } catch (err) {
      throw new InvalidRequestError(`tls.listen: bad certificate or key: ${(err as Error).message}`).because(err)
    }
    listen = { context, cert: pair.cert, handshakeTimeoutMs: spec.listen.handshake_timeout ?? HANDSHAKE_TIMEOUT_MS }
  }
  let upstream: ProxyTls['upstream']
  if (spec.upstream) {
    const ca = spec.upstream.ca === undefined ? undefined : await pem('upstream.ca', spec.upstream.ca, baseDir)
    if (ca !== undefined) {
      try { tls.createSecureContext({ ca }) } catch (err) {
        throw new InvalidRequestError(`tls.upstream.ca: not a certificate: ${(err as Error).message}`).because(err)
      }
    }
    upstream = { servername: spec.upstream.servername, ca, rejectUnauthorized: spec.upstream.insecure !== true }
  }
  return { spec, ...(listen ? { listen } : {}), ...(upstream ? { upstream } : {}) }
}

/** The spec as the API shows it: inline keys are never echoed. */
export function tlsJSON(spec: TlsSpec): TlsSpec {
  const l = spec.listen
  return l?.key && isPem(l.key) ? { ...spec, listen: { ...l, key: '(inline)' } } : spec
}

/** PEM texts, and the certificate's SHA-256 fingerprint. */
export interface Certificate { cert: string; key: string; fingerprint: string }

/**
 * A self-signed certificate (EC P-256, SHA-256) for the given names (DNS names or IP addresses),
 * usable as its own CA: a client trusts it by taking the certificate as its CA file.
 */
export async function selfSignedCertificate(names: readonly string[] = ['localhost', '127.0.0.1', '::1'], days = 30): Promise<Certificate> {
  const notBeforeDate = new Date(Date.now() - 60_000)
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86_400_000)
  const { generate } = await import('selfsigned')   // loaded only when a certificate is made
  const pems = await generate([{ name: 'commonName', value: names[0] ?? 'localhost' }, { name: 'organizationName', value: 'coquin (throwaway)' }], {
    keyType: 'ec', algorithm: 'sha256', notBeforeDate, notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map(n => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
    ],
  })
  return { cert: pems.cert, key: pems.private, fingerprint: new X509Certificate(pems.cert).fingerprint256 }
}

const isIP = (s: string) => /^[\d.]+$/.test(s) || s.includes(':')

/** One throwaway certificate per process, made on first use. */
let throwaway: Promise<Certificate> | undefined
function throwawayCertificate(): Promise<Certificate> {
  throwaway ??= selfSignedCertificate()
  throwaway.catch(() => { throwaway = undefined })
  return throwaway
}

/** The raw TCP socket under a TLS socket, for what only TCP can do (RST, Nagle). */
const rawOf = new WeakMap<net.Socket, net.Socket>()
export function rememberRaw(secure: net.Socket, raw: net.Socket): void { rawOf.set(secure, raw) }
export function rawSocket(s: net.Socket): net.Socket { return rawOf.get(s) ?? s }
