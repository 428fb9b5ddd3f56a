import { buildRoot, editIndex, emptyIndex, upsertImage } from '../../lib/catalogue-edit.js'
import { addSignature } from '../../lib/document.js'
import { encodePublicKey, generateKeyPair, type KeyPair } from '../../lib/keys.js'
import type { ImageEntry, IndexDocument, RootDocument } from '../../lib/schema.js'

/** In-memory keys, roots and indexes for the lib/ unit tests (no disk). */

export const NOW = new Date('2026-06-01T00:00:00Z')
export const DAY = 86_400_000

export function entry (id: string, over: Partial<ImageEntry> = {}): ImageEntry {
  return {
    id, name: id, version: '1.0', sha512: 'a'.repeat(128), size: 1024, infoHash: 'b'.repeat(40),
    torrent: `torrents/${'b'.repeat(40)}.torrent`, diskFormat: 'qcow2', containerFormat: 'bare',
    minDisk: 10, minRam: 512, arch: 'x86_64', os: 'linux', properties: {}, ...over
  }
}

export interface TrustSet {
  rootKeys: KeyPair[]
  indexKeys: KeyPair[]
  root: RootDocument
  /** index v`version` with `images`, signed by `signers` (default: a threshold of index keys) */
  index: (version: number, images?: ImageEntry[], signers?: KeyPair[], expiresInDays?: number) => IndexDocument
}

export function trustSet (opts: { rootThreshold?: number, indexThreshold?: number, indexKeys?: number, rootExpiresDays?: number } = {}): TrustSet {
  const rootKeys = [generateKeyPair(), generateKeyPair()]
  const indexKeys = Array.from({ length: opts.indexKeys ?? 3 }, () => generateKeyPair())
  const indexThreshold = opts.indexThreshold ?? 2
  let root = buildRoot({
    name: 'atlas',
    expires: new Date(NOW.getTime() + (opts.rootExpiresDays ?? 365) * DAY),
    rootKeys: rootKeys.map((k) => encodePublicKey(k.publicKey)),
    rootThreshold: opts.rootThreshold ?? 1,
    indexKeys: indexKeys.map((k) => encodePublicKey(k.publicKey)),
    indexThreshold
  })
  for (const k of rootKeys) root = addSignature(root, k)
  return {
    rootKeys,
    indexKeys,
    root,
    index (version, images = [entry('cvm-4')], signers = indexKeys.slice(0, indexThreshold), expiresInDays = 14) {
      let doc = emptyIndex('atlas', NOW, new Date(NOW.getTime() + expiresInDays * DAY))
      doc = editIndex(doc, NOW, (s) => images.reduce(upsertImage, s))
      doc = { signed: { ...doc.signed, version }, signatures: [] }
      for (const k of signers) doc = addSignature(doc, k)
      return doc
    }
  }
}
