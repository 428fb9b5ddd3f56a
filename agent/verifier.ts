import { stat } from 'node:fs/promises'
import { ImgdistError } from '../lib/errors.js'
import type { ImageEntry } from '../lib/schema.js'
import { PrefixHasher } from '../swarm/prefix-hasher.js'
import { abortable } from './abortable.js'

/**
 * The end-to-end check: the whole file, streamed through sha512, against the signed entry.
 * Piece sha1s only prove the bytes match the torrent; this proves they are what was endorsed.
 * `precomputed`: the digest of the same file hashed while it downloaded (swarm/prefix-hasher.ts).
 */
export async function verifyImageFile (path: string, entry: ImageEntry, signal?: AbortSignal, precomputed?: Promise<string>): Promise<void> {
  // Handled from here on: it can fail (the sha512 worker could not start) while the stat below is
  // awaited, or never be awaited at all after a size mismatch, and an unhandled rejection ends the
  // process. Awaited below, it still throws.
  precomputed?.catch(() => {})
  let size: number
  try { size = (await stat(path)).size } catch (err) {
    throw new ImgdistError('IO_ERROR', `cannot read downloaded file ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (size !== entry.size) throw new ImgdistError('HASH_MISMATCH', `${entry.id}: file is ${size} bytes, the catalogue says ${entry.size}`)
  const hex = precomputed !== undefined ? await precomputed : await hashInWorker(path, size, signal)
  if (hex !== entry.sha512) throw new ImgdistError('HASH_MISMATCH', `${entry.id}: sha512 ${hex.slice(0, 16)}… is not the signed ${entry.sha512.slice(0, 16)}…`)
}

/**
 * A file already on disk (a verification resumed after a restart or retried): hashed whole by
 * the download's sha512 worker, so that a multi-GB read does not hold the event loop, which
 * serves every other torrent's peers, for a couple of milliseconds per MiB.
 */
async function hashInWorker (path: string, size: number, signal?: AbortSignal): Promise<string> {
  const hasher = new PrefixHasher(path, size)
  try {
    hasher.advance(size)
    return await (signal !== undefined ? abortable(hasher.digest, signal) : hasher.digest)
  } finally {
    await hasher.close()
  }
}
