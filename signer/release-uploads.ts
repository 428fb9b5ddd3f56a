import { createReadStream } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { UsageError } from '../lib/errors.js'
import type { IndexSigned } from '../lib/schema.js'

/**
 * What `publish` sends besides the documents, so that a published release can be downloaded:
 * the .torrent of every image the index lists (those found where `add` wrote them), and the
 * image bytes named with `--image ID=FILE` (the index server's origin seed and web seed).
 * Everything is found and checked before the first byte is sent: a typo must not half-publish.
 */

export interface ReleaseUpload {
  kind: 'torrent' | 'image'
  path: string
  /** relative to the server's base URL */
  urlPath: string
  contentType: string
  size: number
  open: () => Readable
}

export async function releaseUploads (index: IndexSigned, indexPath: string, opts: { torrentDir?: string, images: string[] }): Promise<{ uploads: ReleaseUpload[], notes: string[] }> {
  const uploads: ReleaseUpload[] = []
  const notes: string[] = []
  for (const e of index.images) {
    // `add` writes <torrent-dir>/<infoHash>.torrent; the index names it relative to itself
    const path = opts.torrentDir !== undefined ? join(opts.torrentDir, `${e.infoHash}.torrent`) : join(dirname(indexPath), e.torrent)
    if (!await access(path).then(() => true, () => false)) {
      notes.push(`${e.id}: no ${path} here; its torrent is not uploaded (the server keeps any it has)`)
      continue
    }
    uploads.push(fileUpload('torrent', path, `v1/torrents/${e.infoHash}.torrent`, 'application/x-bittorrent', (await stat(path)).size))
  }
  const seen = new Set<string>()
  for (const spec of opts.images) {
    const eq = spec.indexOf('=')
    if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`publish: --image wants ID=FILE, got "${spec}"`)
    const id = spec.slice(0, eq)
    const path = spec.slice(eq + 1)
    const entry = index.images.find((i) => i.id === id)
    if (entry === undefined) throw new UsageError(`publish: --image ${id}: the index lists no image "${id}"`)
    if (seen.has(id)) throw new UsageError(`publish: --image ${id} is given twice`)
    seen.add(id)
    let size: number
    try { size = (await stat(path)).size } catch (err) { throw new UsageError(`publish: --image ${id}: ${(err as Error).message}`) }
    // the server hashes what it receives and keeps it only if it matches; a wrong file is caught here for free
    if (size !== entry.size) throw new UsageError(`publish: --image ${id}: ${path} has ${size} bytes, the index says ${entry.size}`)
    uploads.push(fileUpload('image', path, `v1/images/${encodeURIComponent(id)}`, 'application/octet-stream', size))
  }
  return { uploads, notes }
}

function fileUpload (kind: ReleaseUpload['kind'], path: string, urlPath: string, contentType: string, size: number): ReleaseUpload {
  return { kind, path, urlPath, contentType, size, open: () => createReadStream(path, { highWaterMark: 1024 * 1024 }) }
}
