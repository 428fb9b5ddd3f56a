import { randomFillSync } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildRoot, editIndex, emptyIndex, upsertImage } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { ImageHasher } from '../lib/image-hasher.js'
import { encodePublicKey, encodeSecretKey, generateKeyPair } from '../lib/keys.js'
import type { ImageEntry, IndexDocument } from '../lib/schema.js'
import { buildTorrent } from '../lib/torrent-meta.js'

/**
 * The benchmark's catalogue, built from lib/ alone (as test/helpers/catalogue-fixture.ts does):
 * an image of random bytes (incompressible and not sparse), its .torrent and a signed root and
 * index, all under `dir`.
 */

export interface BenchImage {
  id: string
  path: string
  size: number
  sha512: string
  infoHash: string
  pieceLength: number
  torrentPath: string
  rootPath: string
  /** the signed index version 2, which lists the image */
  indexPath: string
  index: IndexDocument
  /** the signed index version 1, which lists nothing: the catalogue before the release */
  emptyIndexPath: string
  entry: ImageEntry
}

const CHUNK = 4 * 1024 * 1024

/** Writes `size` random bytes to `path`, hashing as it goes (one pass, bounded memory). */
async function writeRandomImage (path: string, size: number, pieceLength: number): Promise<ReturnType<ImageHasher['digest']>> {
  const hasher = new ImageHasher(pieceLength)
  const fh = await open(path, 'w')
  try {
    const buf = Buffer.allocUnsafe(CHUNK)
    for (let off = 0; off < size; off += CHUNK) {
      const part = buf.subarray(0, Math.min(CHUNK, size - off))
      randomFillSync(part)
      hasher.update(part)
      await fh.write(part, 0, part.byteLength)
    }
  } finally { await fh.close() }
  return hasher.digest()
}

export async function sha512OfFile (path: string): Promise<string> {
  const { createHash } = await import('node:crypto')
  const h = createHash('sha512')
  for await (const c of createReadStream(path, { highWaterMark: CHUNK })) h.update(c as Buffer)
  return h.digest('hex')
}

export interface ImageSpec { dir: string, id: string, size: number, pieceLength: number, announce: string[] }

export async function makeBenchImage (s: ImageSpec): Promise<BenchImage> {
  await mkdir(join(s.dir, 'torrents'), { recursive: true })
  const path = join(s.dir, `${s.id}.img`)
  const h = await writeRandomImage(path, s.size, s.pieceLength)
  const t = buildTorrent({ name: s.id, length: h.size, pieceLength: s.pieceLength, pieces: h.pieces, announce: s.announce, createdBy: 'imgdist bench' })
  const torrentPath = join(s.dir, 'torrents', `${t.infoHash}.torrent`)
  await writeFile(torrentPath, t.bytes)

  const rootKey = generateKeyPair()
  const indexKey = generateKeyPair()
  await writeFile(join(s.dir, 'root.key'), encodeSecretKey(rootKey.secretKey) + '\n', { mode: 0o600 })
  await writeFile(join(s.dir, 'index.key'), encodeSecretKey(indexKey.secretKey) + '\n', { mode: 0o600 })
  const name = 'bench'
  const root = addSignature(buildRoot({
    name,
    expires: new Date(Date.now() + 30 * 86400_000),
    rootKeys: [encodePublicKey(rootKey.publicKey)],
    rootThreshold: 1,
    indexKeys: [encodePublicKey(indexKey.publicKey)],
    indexThreshold: 1
  }), rootKey)
  const rootPath = join(s.dir, 'root.yaml')
  await writeFile(rootPath, serializeDocument(root))
  const entry: ImageEntry = {
    id: s.id, name: s.id, version: '1.0', sha512: h.sha512, size: h.size, infoHash: t.infoHash,
    torrent: `torrents/${t.infoHash}.torrent`, diskFormat: 'raw', containerFormat: 'bare',
    minDisk: 1, minRam: 0, arch: 'x86_64', os: 'linux', properties: { os_distro: 'bench' }
  }
  const now = new Date()
  const before = editIndex(emptyIndex(name, now, new Date(Date.now() + 7 * 86400_000)), now, (x) => x)
  const emptyIndexPath = join(s.dir, 'index-empty.yaml')
  await writeFile(emptyIndexPath, serializeDocument(addSignature(before, indexKey)))
  const index = addSignature(editIndex(before, now, (x) => upsertImage(x, entry)), indexKey)
  const indexPath = join(s.dir, 'index.yaml')
  await writeFile(indexPath, serializeDocument(index))
  return { id: s.id, path, size: h.size, sha512: h.sha512, infoHash: t.infoHash, pieceLength: s.pieceLength, torrentPath, rootPath, indexPath, index, emptyIndexPath, entry }
}
