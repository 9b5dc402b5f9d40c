// Reading files named by users (configs, certificates) without trusting them: only regular files, opened
// without blocking (a FIFO's open would wait for a writer, forever), and no larger than a cap.
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

/** Why a file was not read: an errno code (ENOENT, EACCES, EISDIR…), `not_regular` or `too_large`. */
export class FileReadError extends Error {
  override name = 'FileReadError'
  constructor(readonly code: string, message: string) { super(message) }
}

/** A regular file's text, at most maxBytes long. Throws FileReadError. */
export async function readRegularFile(file: string, maxBytes: number): Promise<string> {
  let fh
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new FileReadError(e.code ?? 'EIO', e.message)
  }
  try {
    const st = await fh.stat()
    if (st.isDirectory()) throw new FileReadError('EISDIR', 'is a directory')
    if (!st.isFile()) throw new FileReadError('not_regular', 'not a regular file')
    if (st.size > maxBytes) throw new FileReadError('too_large', `${st.size} bytes, over the limit of ${maxBytes}`)
    const buf = await fh.readFile()
    if (buf.length > maxBytes) throw new FileReadError('too_large', `over the limit of ${maxBytes} bytes`)
    return buf.toString('utf8')
  } finally {
    await fh.close()
  }
}
