import { randomBytes } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml } from '../lib/document.js'
import { TrustError } from '../lib/errors.js'
import { decodePublicKey, decodeSecretKey, type KeyPair } from '../lib/keys.js'
import type { SignedDocument } from '../lib/schema.js'
import { SignerError } from './errors.js'

/** File access for imgdist-sign: bounded reads, atomic writes, and failures as one-line errors. */

export function fsError (err: unknown, path: string): SignerError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return new SignerError('NOT_FOUND', `${path}: no such file`, 2, { cause: err })
  if (code === 'EACCES' || code === 'EPERM') return new SignerError('IO_ERROR', `${path}: permission denied`, 2, { cause: err })
  if (code === 'EISDIR') return new SignerError('IO_ERROR', `${path}: is a directory, expected a file`, 2, { cause: err })
  if (code === 'EEXIST') return new SignerError('IO_ERROR', `${path}: already exists; refusing to overwrite it`, 2, { cause: err })
  return new SignerError('IO_ERROR', `${path}: ${(err as Error).message}`, 2, { cause: err })
}

/**
 * Reads at most `maxBytes`; a larger file is refused from its size alone, before reading it.
 * `tooLarge` chooses who is to blame: a document under verification fails (exit 1), any other
 * input is a usage error (exit 2).
 */
export async function readBounded (path: string, maxBytes: number, tooLargeExit: 1 | 2 = 2): Promise<Buffer> {
  let fh
  try { fh = await open(path, 'r') } catch (err) { throw fsError(err, path) }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new SignerError('IO_ERROR', `${path}: not a regular file`, 2)
    if (st.size > maxBytes) {
      const msg = `${path} is ${st.size} bytes, over the limit of ${maxBytes}`
      throw tooLargeExit === 1 ? new TrustError('TOO_LARGE', msg) : new SignerError('TOO_LARGE', msg, 2)
    }
    const buf = Buffer.alloc(st.size + 1) // one spare byte notices a file that grew meanwhile
    let filled = 0
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null)
      if (bytesRead === 0) break
      filled += bytesRead
      if (filled === buf.length) break
    }
    if (filled > st.size) throw new SignerError('IO_ERROR', `${path} grew while being read; try again when nothing is writing it`, 2)
    return buf.subarray(0, filled)
  } catch (err) {
    if (err instanceof SignerError || err instanceof TrustError) throw err
    throw fsError(err, path)
  } finally {
    await fh.close()
  }
}

/**
 * Replaces `path` all at once: a crash or a full disk leaves either the old file or the new
 * one, never half of each, which matters for a signed index other people are about to sign.
 */
export async function writeAtomic (path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`)
  let fh
  try { fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode) } catch (err) { throw fsError(err, path) }
  try {
    await fh.writeFile(data)
    await fh.sync()
    await fh.close()
    fh = undefined
    await rename(tmp, path)
  } catch (err) {
    await fh?.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw fsError(err, path)
  }
  // Make the rename itself durable; some filesystems refuse to fsync a directory: that is fine.
  try { const d = await open(dir, 'r'); try { await d.sync() } finally { await d.close() } } catch {}
}

/** Creates a new file, refusing to replace an existing one (O_EXCL), with exactly `mode`. */
export async function writeExclusive (path: string, data: string, mode: number): Promise<void> {
  let fh
  try { fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode) } catch (err) { throw fsError(err, path) }
  try {
    await fh.chmod(mode) // the umask may have narrowed it further; make it exact
    await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    throw fsError(err, path)
  } finally {
    await fh.close()
  }
}

const MAX_KEY_FILE_BYTES = 4096

export async function loadSecretKey (path: string): Promise<KeyPair> {
  const text = (await readBounded(path, MAX_KEY_FILE_BYTES)).toString('utf8')
  try { return decodeSecretKey(text) } catch (err) {
    throw new SignerError('KEY_INVALID', `${path}: ${(err as Error).message}`, 2, { cause: err })
  }
}

/** `--root-key` and friends take a .pub file or the inline `ed25519:...` text itself. */
export async function loadPublicKeyArg (arg: string, flag: string): Promise<string> {
  const inline = arg.trim().startsWith('ed25519:') || arg.trim().startsWith('ed25519-secret:')
  const text = inline ? arg.trim() : (await readBounded(arg, MAX_KEY_FILE_BYTES)).toString('utf8').trim()
  try { decodePublicKey(text) } catch (err) {
    throw new SignerError('KEY_INVALID', `${flag} ${inline ? '(inline key)' : arg}: ${(err as Error).message}`, 2, { cause: err })
  }
  return text
}

export type DocKind = 'root' | 'index' | 'any'

export function maxBytesFor (kind: DocKind): number {
  return kind === 'root' ? MAX_ROOT_BYTES : MAX_INDEX_BYTES
}

/** Reads and parses a signed YAML document; parse failures are TrustErrors (callers decide the exit status). */
export async function readSignedDocument (path: string, kind: DocKind, tooLargeExit: 1 | 2 = 2): Promise<SignedDocument<unknown>> {
  const bytes = await readBounded(path, maxBytesFor(kind), tooLargeExit)
  return parseSignedYaml(bytes, maxBytesFor(kind), path)
}

export async function exists (path: string): Promise<boolean> {
  try { const fh = await open(path, 'r'); await fh.close(); return true } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw fsError(err, path)
  }
}
