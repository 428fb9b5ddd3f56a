import { createHash } from 'node:crypto'
import bencode from 'bencode'
import { ImgdistError } from './errors.js'

/**
 * v1 single-file .torrent files (BEP 3, url-list of BEP 19). Built from piece hashes that the
 * caller computed while streaming (see image-hasher.ts), and parsed with bounds when received.
 */

export const MIN_PIECE_LENGTH = 16 * 1024
export const MAX_PIECE_LENGTH = 16 * 1024 * 1024
/** 16 GiB at 1 MiB pieces is 320 KiB of hashes; anything much larger is not a torrent of ours. */
export const MAX_TORRENT_BYTES = 4 * 1024 * 1024

/** About 1500 pieces, a power of two between 1 MiB and 16 MiB: few enough to track, many enough to swarm. */
export function choosePieceLength (size: number): number {
  let len = 1024 * 1024
  while (len < MAX_PIECE_LENGTH && size / len > 1500) len *= 2
  return len
}

export function isValidPieceLength (n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PIECE_LENGTH && n <= MAX_PIECE_LENGTH && (n & (n - 1)) === 0
}

export interface TorrentSpec {
  name: string
  length: number
  pieceLength: number
  pieces: Uint8Array // concatenated 20-byte sha1s
  announce?: string[]
  webSeeds?: string[]
  createdBy?: string
  creationDate?: number // unix seconds
}

export interface BuiltTorrent { infoHash: string, bytes: Uint8Array }

export function buildTorrent (spec: TorrentSpec): BuiltTorrent {
  const expectedPieces = Math.ceil(spec.length / spec.pieceLength)
  if (spec.pieces.byteLength !== expectedPieces * 20) throw new ImgdistError('TORRENT_INVALID', 'piece hash count does not match the length')
  const info = { length: spec.length, name: spec.name, 'piece length': spec.pieceLength, pieces: spec.pieces }
  const infoBytes = bencode.encode(info)
  const torrent: Record<string, unknown> = { info }
  const announce = spec.announce ?? []
  if (announce.length > 0) {
    torrent.announce = announce[0]
    torrent['announce-list'] = announce.map((u) => [u])
  }
  if (spec.webSeeds !== undefined && spec.webSeeds.length > 0) torrent['url-list'] = spec.webSeeds
  if (spec.createdBy !== undefined) torrent['created by'] = spec.createdBy
  if (spec.creationDate !== undefined) torrent['creation date'] = spec.creationDate
  return { infoHash: createHash('sha1').update(infoBytes).digest('hex'), bytes: bencode.encode(torrent) }
}

export interface ParsedTorrent {
  infoHash: string
  name: string
  length: number
  pieceLength: number
  pieceCount: number
  /** the concatenated 20-byte sha1 of each piece */
  pieces: Uint8Array
  announce: string[]
  webSeeds: string[]
  /** BEP 27 `private`: peers only from the torrent's trackers, so no DHT, LSD or peer exchange */
  private: boolean
}

const dec = new TextDecoder()
const str = (v: unknown): string | undefined => v instanceof Uint8Array ? dec.decode(v) : undefined

/**
 * Parses an untrusted .torrent and checks it is one single-file torrent of the expected bytes.
 * The info hash is recomputed from the info dict as decoded: a non-canonical encoding yields
 * another hash and is refused, which is the safe outcome.
 */
export function parseTorrent (bytes: Uint8Array, expect?: { infoHash?: string, length?: number }): ParsedTorrent {
  const bad = (why: string): ImgdistError => new ImgdistError('TORRENT_INVALID', `torrent ${why}`)
  if (bytes.byteLength > MAX_TORRENT_BYTES) throw bad(`is ${bytes.byteLength} bytes, over the limit of ${MAX_TORRENT_BYTES}`)
  let t: Record<string, unknown>
  try { t = bencode.decode(bytes) as Record<string, unknown> } catch (err) { throw bad(`is not valid bencode: ${(err as Error).message}`) }
  if (t === null || typeof t !== 'object') throw bad('is not a dictionary')
  const info = t.info as Record<string, unknown> | undefined
  if (info === undefined || info === null || typeof info !== 'object' || info instanceof Uint8Array) throw bad('has no info dictionary')
  if (info.files !== undefined) throw bad('is a multi-file torrent; imgdist images are single files')
  const length = info.length
  const pieceLength = info['piece length']
  const pieces = info.pieces
  const name = str(info.name)
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) throw bad('has no valid length')
  if (typeof pieceLength !== 'number' || !isValidPieceLength(pieceLength)) throw bad('has an invalid piece length')
  if (!(pieces instanceof Uint8Array)) throw bad('has no pieces')
  const pieceCount = Math.ceil(length / pieceLength)
  if (pieces.byteLength !== pieceCount * 20) throw bad(`has ${pieces.byteLength / 20} piece hashes for ${pieceCount} pieces`)
  if (name === undefined || name.length === 0) throw bad('has no name')
  const infoHash = createHash('sha1').update(bencode.encode(info)).digest('hex')
  if (expect?.infoHash !== undefined && infoHash !== expect.infoHash) throw bad(`info hash ${infoHash} is not the signed ${expect.infoHash}`)
  if (expect?.length !== undefined && length !== expect.length) throw bad(`length ${length} is not the signed size ${expect.length}`)
  const announce: string[] = []
  const a = str(t.announce)
  if (a !== undefined) announce.push(a)
  if (Array.isArray(t['announce-list'])) {
    for (const tier of t['announce-list']) if (Array.isArray(tier)) for (const u of tier) { const s = str(u); if (s !== undefined && !announce.includes(s)) announce.push(s) }
  }
  const ul = t['url-list']
  const webSeeds = Array.isArray(ul) ? ul.map(str).filter((s): s is string => s !== undefined) : (str(ul) !== undefined ? [str(ul) as string] : [])
  return { infoHash, name, length, pieceLength, pieceCount, pieces, announce, webSeeds, private: info.private === 1 }
}
