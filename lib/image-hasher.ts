import { createHash, type Hash } from 'node:crypto'
import { PieceHasher } from './piece-hasher.js'

/**
 * One streaming pass over an image: sha512 of the whole file (what the catalogue signs and what
 * Glance reports as os_hash_value), its size, and the sha1 of every torrent piece. Feed it
 * chunks of any size; it never holds more than one piece's worth of hashing state.
 */
export class ImageHasher {
  readonly pieceLength: number
  #whole: Hash = createHash('sha512')
  #pieces: PieceHasher
  #size = 0

  constructor (pieceLength: number) {
    this.pieceLength = pieceLength
    this.#pieces = new PieceHasher(pieceLength)
  }

  get size (): number { return this.#size }

  update (chunk: Uint8Array): void {
    this.#whole.update(chunk)
    this.#size += chunk.byteLength
    this.#pieces.update(chunk)
  }

  digest (): { sha512: string, size: number, pieces: Uint8Array } {
    return { sha512: this.#whole.digest('hex'), size: this.#size, pieces: this.#pieces.digest() }
  }
}
