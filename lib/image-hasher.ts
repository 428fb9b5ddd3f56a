import { createHash, type Hash } from 'node:crypto'

/**
 * One streaming pass over an image: sha512 of the whole file (what the catalogue signs and what
 * Glance reports as os_hash_value), its size, and the sha1 of every torrent piece. Feed it
 * chunks of any size; it never holds more than one piece's worth of hashing state.
 */
export class ImageHasher {
  readonly pieceLength: number
  #whole: Hash = createHash('sha512')
  #piece: Hash = createHash('sha1')
  #pieceFill = 0
  #pieceHashes: Buffer[] = []
  #size = 0

  constructor (pieceLength: number) { this.pieceLength = pieceLength }

  get size (): number { return this.#size }

  update (chunk: Uint8Array): void {
    this.#whole.update(chunk)
    this.#size += chunk.byteLength
    let offset = 0
    while (offset < chunk.byteLength) {
      const take = Math.min(this.pieceLength - this.#pieceFill, chunk.byteLength - offset)
      this.#piece.update(chunk.subarray(offset, offset + take))
      this.#pieceFill += take
      offset += take
      if (this.#pieceFill === this.pieceLength) this.#closePiece()
    }
  }

  #closePiece (): void {
    this.#pieceHashes.push(this.#piece.digest())
    this.#piece = createHash('sha1')
    this.#pieceFill = 0
  }

  digest (): { sha512: string, size: number, pieces: Uint8Array } {
    if (this.#pieceFill > 0) this.#closePiece()
    return { sha512: this.#whole.digest('hex'), size: this.#size, pieces: Buffer.concat(this.#pieceHashes) }
  }
}
