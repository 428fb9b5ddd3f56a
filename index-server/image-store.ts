import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { copyFile, open, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ImgdistError } from '../lib/errors.js'
import type { ImageEntry } from '../lib/schema.js'
import { commitTemp, fsyncDir, tempPathFor, writeFileAtomic } from './atomic-file.js'
import type { DataPaths } from './data-dir.js'

/**
 * Image bytes under DATA/images/<id> (ids are directory-safe by the schema). A file is only ever
 * placed there after its sha512 and size matched the signed entry, and a marker in
 * DATA/verified/<id>.json records that, with the file's size and mtime, so a restart need not
 * re-hash gigabytes and a file replaced behind the server's back is noticed.
 */

interface Marker { sha512: string, size: number, mtimeMs: number, verifiedAt: string }

export class ImageStore {
  readonly paths: DataPaths
  constructor (paths: DataPaths) { this.paths = paths }

  imagePath (id: string): string { return join(this.paths.imagesDir, id) }
  #markerPath (id: string): string { return join(this.paths.verifiedDir, `${id}.json`) }

  /** True when images/<id> is the signed file (marker matches entry, size and mtime). */
  async isVerified (entry: ImageEntry): Promise<boolean> {
    try {
      const [st, raw] = await Promise.all([stat(this.imagePath(entry.id)), readFile(this.#markerPath(entry.id), 'utf8')])
      const m = JSON.parse(raw) as Marker
      return m.sha512 === entry.sha512 && m.size === entry.size && st.size === entry.size && st.mtimeMs === m.mtimeMs
    } catch {
      return false
    }
  }

  async exists (id: string): Promise<boolean> {
    try { return (await stat(this.imagePath(id))).isFile() } catch { return false }
  }

  /**
   * Streams an upload to a temp file while hashing; only bytes that hash to the entry are renamed
   * into place. Never holds more than one chunk in memory.
   */
  async receive (entry: ImageEntry, source: Readable | AsyncIterable<Uint8Array>, onBytes?: (n: number) => void): Promise<void> {
    const tmp = tempPathFor(this.imagePath(entry.id))
    const h = createHash('sha512')
    let size = 0
    try {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 })
      await pipeline(source, async function * (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          size += chunk.byteLength
          if (size > entry.size) throw new ImgdistError('TOO_LARGE', `upload of "${entry.id}" is over its signed size of ${entry.size} bytes`)
          h.update(chunk)
          onBytes?.(chunk.byteLength)
          yield chunk
        }
      }, out)
      if (!out.closed) await once(out, 'close')
      checkDigest(entry, h.digest('hex'), size)
      await fsyncFile(tmp)
      await commitTemp(tmp, this.imagePath(entry.id))
      await this.#writeMarker(entry)
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
  }

  /** The operator path: verify a file copied by hand, then copy (or move) it into the data dir. */
  async importFile (entry: ImageEntry, source: string): Promise<void> {
    const got = await hashFile(source)
    checkDigest(entry, got.sha512, got.size)
    const tmp = tempPathFor(this.imagePath(entry.id))
    try {
      await copyFile(source, tmp)
      await fsyncFile(tmp)
      // Hash the copy too: the source might have changed between the two reads.
      const copied = await hashFile(tmp)
      checkDigest(entry, copied.sha512, copied.size)
      await commitTemp(tmp, this.imagePath(entry.id))
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
    await this.#writeMarker(entry)
  }

  /** A file that appeared in images/ without a marker (placed by hand): hash it where it lies. */
  async verifyInPlace (entry: ImageEntry): Promise<void> {
    const got = await hashFile(this.imagePath(entry.id))
    checkDigest(entry, got.sha512, got.size)
    await this.#writeMarker(entry)
  }

  async #writeMarker (entry: ImageEntry): Promise<void> {
    const st = await stat(this.imagePath(entry.id))
    const m: Marker = { sha512: entry.sha512, size: st.size, mtimeMs: st.mtimeMs, verifiedAt: new Date().toISOString() }
    await writeFileAtomic(this.#markerPath(entry.id), JSON.stringify(m) + '\n')
    await fsyncDir(this.paths.imagesDir)
  }
}

async function fsyncFile (path: string): Promise<void> {
  const fh = await open(path, 'r+')
  try { await fh.sync() } finally { await fh.close() }
}

function checkDigest (entry: ImageEntry, sha512: string, size: number): void {
  if (size !== entry.size) throw new ImgdistError('HASH_MISMATCH', `"${entry.id}" is ${size} bytes; the index signs ${entry.size}`)
  if (sha512 !== entry.sha512) throw new ImgdistError('HASH_MISMATCH', `"${entry.id}" has sha512 ${sha512.slice(0, 16)}…; the index signs ${entry.sha512.slice(0, 16)}…`)
}

export async function hashFile (path: string): Promise<{ sha512: string, size: number }> {
  const h = createHash('sha512')
  let size = 0
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      h.update(chunk as Buffer)
      size += (chunk as Buffer).byteLength
    }
  } catch (err) {
    throw new ImgdistError('IO_ERROR', `cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
  return { sha512: h.digest('hex'), size }
}
