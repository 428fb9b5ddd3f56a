import { createHash, type Hash } from 'node:crypto'

/**
 * sha1 of every torrent piece of a stream of chunks of any size. Used by ImageHasher (one
 * thread) and on its own by imgdist-sign's worker thread, which runs it beside the main
 * thread's sha512 (signer/hash-image.ts).
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
