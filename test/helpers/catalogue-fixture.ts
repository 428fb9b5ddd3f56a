import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildRoot, editIndex, emptyIndex, revokeImage, upsertImage } from '../../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../../lib/document.js'
import { ImageHasher } from '../../lib/image-hasher.js'
import { encodePublicKey, generateKeyPair, type KeyPair } from '../../lib/keys.js'
import type { ImageEntry, IndexDocument, RootDocument } from '../../lib/schema.js'
import { buildTorrent, choosePieceLength } from '../../lib/torrent-meta.js'

/**
 * Builds a real signed catalogue on disk from lib/ alone (no CLI), for the index-server and
 * agent tests: keys, root v1, image files of random bytes, their .torrent files, a signed index.
 */

export interface Fixture {
  dir: string
  rootKeys: KeyPair[]
  indexKeys: KeyPair[]
  root: RootDocument
  rootPath: string
  index: IndexDocument
  indexPath: string
  torrentDir: string
  /** image id → path of its bytes */
  images: Map<string, string>
  /** image id → raw .torrent */
  torrents: Map<string, Uint8Array>
  /** A new index version with `edit` applied, signed by a threshold of index keys, written to indexPath. */
  publish: (edit: (idx: IndexDocument) => IndexDocument, signers?: KeyPair[]) => Promise<IndexDocument>
  addImage: (id: string, size: number, opts?: ImageOptions) => Promise<ImageEntry>
  revoke: (id: string, reason?: string) => Promise<IndexDocument>
}

export interface ImageOptions { pieceLength?: number, webSeeds?: string[], announce?: string[], expires?: string, bytes?: Uint8Array }

export async function writeRandomFile (path: string, size: number): Promise<void> {
  const chunk = 1024 * 1024
  const parts: Buffer[] = []
  for (let off = 0; off < size; off += chunk) parts.push(randomBytes(Math.min(chunk, size - off)))
  await writeFile(path, Buffer.concat(parts))
}

export async function hashFile (path: string, pieceLength: number): Promise<{ sha512: string, size: number, pieces: Uint8Array }> {
  const h = new ImageHasher(pieceLength)
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer)
  return h.digest()
}

export interface FixtureOptions {
  name?: string
  indexThreshold?: number
  indexKeyCount?: number
  rootExpires?: Date
  indexExpires?: Date
}

export async function makeFixture (dir: string, opts: FixtureOptions = {}): Promise<Fixture> {
  const name = opts.name ?? 'test-catalogue'
  const rootKeys = [generateKeyPair()]
  const indexKeys = Array.from({ length: opts.indexKeyCount ?? 1 }, () => generateKeyPair())
  const threshold = opts.indexThreshold ?? 1
  const torrentDir = join(dir, 'torrents')
  const imageDir = join(dir, 'images')
  await mkdir(torrentDir, { recursive: true })
  await mkdir(imageDir, { recursive: true })
  const root = addSignature(buildRoot({
    name,
    expires: opts.rootExpires ?? new Date(Date.now() + 365 * 86400_000),
    rootKeys: rootKeys.map((k) => encodePublicKey(k.publicKey)),
    rootThreshold: 1,
    indexKeys: indexKeys.map((k) => encodePublicKey(k.publicKey)),
    indexThreshold: threshold
  }), rootKeys[0] as KeyPair)
  const rootPath = join(dir, 'root.yaml')
  await writeFile(rootPath, serializeDocument(root))
  const indexPath = join(dir, 'index.yaml')
  const images = new Map<string, string>()
  const torrents = new Map<string, Uint8Array>()
  const expires = opts.indexExpires ?? new Date(Date.now() + 30 * 86400_000)

  const fx: Fixture = {
    dir, rootKeys, indexKeys, root, rootPath, torrentDir, images, torrents, indexPath,
    index: emptyIndex(name, new Date(), expires),
    async publish (edit, signers = indexKeys.slice(0, threshold)) {
      let next = edit(fx.index)
      for (const k of signers) next = addSignature(next, k)
      fx.index = next
      await writeFile(indexPath, serializeDocument(next))
      return next
    },
    async addImage (id, size, io = {}) {
      const path = join(imageDir, `${id}.img`)
      if (io.bytes !== undefined) await writeFile(path, io.bytes)
      else await writeRandomFile(path, size)
      const pieceLength = io.pieceLength ?? choosePieceLength(size)
      const h = await hashFile(path, pieceLength)
      const t = buildTorrent({ name: id, length: h.size, pieceLength, pieces: h.pieces, announce: io.announce, webSeeds: io.webSeeds })
      await writeFile(join(torrentDir, `${t.infoHash}.torrent`), t.bytes)
      images.set(id, path)
      torrents.set(id, t.bytes)
      const entry: ImageEntry = {
        id, name: id, version: '1.0', sha512: h.sha512, size: h.size, infoHash: t.infoHash,
        torrent: `torrents/${t.infoHash}.torrent`, diskFormat: 'raw', containerFormat: 'bare',
        minDisk: 1, minRam: 0, arch: 'x86_64', os: 'linux', properties: { os_distro: 'test' },
        ...(io.webSeeds !== undefined ? { webSeeds: io.webSeeds } : {}),
        ...(io.expires !== undefined ? { expires: io.expires } : {})
      }
      await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, entry)))
      return entry
    },
    async revoke (id, reason = 'test revocation') {
      return await fx.publish((idx) => editIndex(idx, new Date(), (s) => revokeImage(s, id, reason, new Date())))
    }
  }
  return fx
}
