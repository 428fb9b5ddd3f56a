import { stat } from 'node:fs/promises'
import type { ImageEntry } from '../lib/schema.js'
import { imageExpired } from '../lib/trust.js'
import type { CatalogueStore } from './catalogue-store.js'
import type { ImageStore } from './image-store.js'
import type { SeedItem } from './seeder.js'
import type { TorrentStore } from './torrent-store.js'

export type Warn = (msg: string, detail?: Record<string, unknown>) => void

/**
 * The rescan: verifies files an operator copied into images/ by hand (hashed once; a mismatch is
 * logged and not retried until the file changes), which is what lets the web seed serve them,
 * and decides what the origin seeds: every verified image of the current index, not past its own
 * expiry, whose torrent is the signed one. Runs with seeding off too.
 */
export class SeedSet {
  readonly #failed = new Set<string>()
  constructor (private readonly catalogue: CatalogueStore, private readonly images: ImageStore, private readonly torrents: TorrentStore, private readonly warn: Warn) {}

  async items (now: Date): Promise<SeedItem[]> {
    const index = this.catalogue.index
    if (index === undefined) return []
    const out: SeedItem[] = []
    for (const entry of index.doc.signed.images) {
      // Verified first, torrent or not: the web seed serves an image without one.
      if (!(await this.#verified(entry))) continue
      if (imageExpired(entry, now)) continue
      const t = await this.torrents.load(entry)
      if (t === undefined) continue
      if (t.parsed.name !== entry.id) {
        this.warn('torrent name differs from the image id; not seeding it (the file is stored as images/<id>)', { id: entry.id, torrentName: t.parsed.name })
        continue
      }
      out.push({ id: entry.id, infoHash: entry.infoHash, torrent: t.bytes })
    }
    return out
  }

  async #verified (entry: ImageEntry): Promise<boolean> {
    if (await this.images.isVerified(entry)) return true
    let key: string
    try {
      const st = await stat(this.images.imagePath(entry.id))
      key = `${entry.id}:${entry.sha512}:${st.size}:${st.mtimeMs}`
    } catch {
      return false
    }
    if (this.#failed.has(key)) return false
    try {
      await this.images.verifyInPlace(entry)
      return true
    } catch (err) {
      this.#failed.add(key)
      this.warn('image file does not match the index; not serving it', { id: entry.id, reason: (err as Error).message })
      return false
    }
  }
}
