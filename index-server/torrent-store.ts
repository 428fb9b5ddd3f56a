import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import bencode from 'bencode'
import { ImgdistError } from '../lib/errors.js'
import type { ImageEntry } from '../lib/schema.js'
import { MAX_TORRENT_BYTES, parseTorrent, type ParsedTorrent } from '../lib/torrent-meta.js'
import { writeFileAtomic } from './atomic-file.js'
import type { DataPaths } from './data-dir.js'

/**
 * .torrent files under DATA/torrents/<infoHash>.torrent, placed by the operator or uploaded.
 * Only a torrent whose info hash and length are the ones the index signs is ever stored or served.
 */
export class TorrentStore {
  readonly paths: DataPaths
  constructor (paths: DataPaths) { this.paths = paths }

  path (infoHash: string): string { return join(this.paths.torrentsDir, `${infoHash}.torrent`) }

  /** The stored torrent of a signed entry, checked; undefined when absent or not the signed one. */
  async load (entry: ImageEntry): Promise<{ bytes: Buffer, parsed: ParsedTorrent } | undefined> {
    let bytes: Buffer
    try { bytes = await readFile(this.path(entry.infoHash)) } catch { return undefined }
    if (bytes.byteLength > MAX_TORRENT_BYTES) return undefined
    try {
      return { bytes, parsed: parseTorrent(bytes, { infoHash: entry.infoHash, length: entry.size }) }
    } catch {
      return undefined
    }
  }

  async store (entry: ImageEntry, bytes: Buffer): Promise<ParsedTorrent> {
    const parsed = parseTorrent(bytes, { infoHash: entry.infoHash, length: entry.size })
    await writeFileAtomic(this.path(entry.infoHash), bytes)
    return parsed
  }
}

export interface Injection { tracker?: string, webSeed?: string }

/**
 * Adds this server's tracker and web seed to a torrent as served. Only the top-level dict is
 * touched; the info dict is re-encoded from its decoded form, which parseTorrent has already
 * proved round-trips to the signed info hash.
 */
export function injectSources (bytes: Uint8Array, inj: Injection): Uint8Array {
  if (inj.tracker === undefined && inj.webSeed === undefined) return bytes
  const t = bencode.decode(bytes) as Record<string, unknown>
  const dec = new TextDecoder()
  const asText = (v: unknown): string | undefined => v instanceof Uint8Array ? dec.decode(v) : undefined
  if (inj.tracker !== undefined) {
    const tiers: string[][] = []
    const first = asText(t.announce)
    if (Array.isArray(t['announce-list'])) {
      for (const tier of t['announce-list']) if (Array.isArray(tier)) tiers.push(tier.map(asText).filter((u): u is string => u !== undefined))
    } else if (first !== undefined) {
      tiers.push([first])
    }
    const known = tiers.flat()
    if (!known.includes(inj.tracker)) tiers.unshift([inj.tracker])
    t['announce-list'] = tiers.filter((tier) => tier.length > 0)
    t.announce = first ?? inj.tracker
  }
  if (inj.webSeed !== undefined) {
    const ul = t['url-list']
    const seeds = Array.isArray(ul) ? ul.map(asText).filter((u): u is string => u !== undefined) : (asText(ul) !== undefined ? [asText(ul) as string] : [])
    if (!seeds.includes(inj.webSeed)) seeds.push(inj.webSeed)
    t['url-list'] = seeds
  }
  const out = bencode.encode(t)
  if (out.byteLength > MAX_TORRENT_BYTES) throw new ImgdistError('TORRENT_INVALID', 'torrent grew over the size limit')
  return out
}
