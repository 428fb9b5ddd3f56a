import { createHash, type Hash } from 'node:crypto'

/**
 * The sha1-per-piece half of lib/image-hasher.ts, for the worker thread that runs beside the
 * main thread's sha512 (see hash-image.ts). Accepts chunks of any size.
 */
export class PieceHasher {
  readonly pieceLength: number
  #piece: Hash = createHash('sha1')
  #fill = 0
  #hashes: Buffer[] = []

  constructor (pieceLength: number) { this.pieceLength = pieceLength }

  update (chunk: Uint8Array): void {
    let offset = 0
    while (offset < chunk.byteLength) {
      const take = Math.min(this.pieceLength - this.#fill, chunk.byteLength - offset)
      this.#piece.update(chunk.subarray(offset, offset + take))
      this.#fill += take
      offset += take
      if (this.#fill === this.pieceLength) this.#close()
    }
  }

  #close (): void {
    this.#hashes.push(this.#piece.digest())
    this.#piece = createHash('sha1')
    this.#fill = 0
  }

  digest (): Buffer {
    if (this.#fill > 0) this.#close()
    return Buffer.concat(this.#hashes)
  }
}
