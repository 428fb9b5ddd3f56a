import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { ImgdistError } from '../lib/errors.js'
import type { ImageEntry } from '../lib/schema.js'

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
  const hex = precomputed !== undefined
    ? await precomputed
    : await (async () => {
      const h = createHash('sha512')
      const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal !== undefined ? { signal } : {}) })
      for await (const chunk of stream) h.update(chunk as Buffer)
      return h.digest('hex')
    })()
  if (hex !== entry.sha512) throw new ImgdistError('HASH_MISMATCH', `${entry.id}: sha512 ${hex.slice(0, 16)}… is not the signed ${entry.sha512.slice(0, 16)}…`)
}
