// A test CA and certificates it signs, made once per test file (EC keys: fast).
import { generate } from 'selfsigned'

export interface Pem { cert: string; key: string }

const ext = (names: string[], ca: boolean) => [
  { name: 'basicConstraints' as const, cA: ca, critical: true },
  { name: 'keyUsage' as const, digitalSignature: true, keyCertSign: ca, cRLSign: ca, critical: true },
  ...(ca ? [] : [{ name: 'extKeyUsage' as const, serverAuth: true }]),
  { name: 'subjectAltName' as const, altNames: names.map(n => (/^[\d.]+$/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
]

export async function testCA(name = 'coquin test CA'): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: name }], { keyType: 'ec', algorithm: 'sha256', extensions: ext([name.replaceAll(' ', '-')], true) })
  return { cert: p.cert, key: p.private }
}

/** A server certificate for `names`, signed by `ca`. */
export async function leaf(ca: Pem, names: string[] = ['localhost', '127.0.0.1']): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec', algorithm: 'sha256', extensions: ext(names, false), ca: { cert: ca.cert, key: ca.key },
  })
  return { cert: p.cert, key: p.private }
}
