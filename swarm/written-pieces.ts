import { ImgdistError } from '../lib/errors.js'
import { PrefixHasher } from './prefix-hasher.js'

/**
 * Which pieces of a torrent are on disk (verified, and their write completed), and the sha512 of
 * the file's gap-free written prefix, computed while the rest downloads (prefix-hasher.ts). The
 * hasher's worker starts at the first advance(): a download hashes as it goes, a torrent already
 * complete on disk (seeding a cached image) only when its digest is asked for.
 */
export class WrittenPieces {
  readonly #path: string
  readonly #length: number
  readonly #pieceLength: number
  readonly #written: Uint8Array
  #prefix = 0
  #hasher: PrefixHasher | undefined
  #closed = false

  constructor (path: string, length: number, pieceLength: number) {
    this.#path = path
    this.#length = length
    this.#pieceLength = pieceLength
    this.#written = new Uint8Array(Math.ceil(length / pieceLength))
  }

  mark (i: number): void { this.#written[i] = 1 }
  markAll (): void { this.#written.fill(1) }

  /** Hands the hasher whatever the written prefix has gained. */
  advance (): void {
    if (this.#closed) return
    this.#hasher ??= new PrefixHasher(this.#path, this.#length)
    while (this.#prefix < this.#written.length && this.#written[this.#prefix] === 1) this.#prefix++
    this.#hasher.advance(this.#prefix * this.#pieceLength)
  }

  /** sha512 (hex) of the whole file as on disk, once every piece is written. */
  async digest (): Promise<string> {
    this.advance()
    if (this.#hasher === undefined) throw new ImgdistError('ABORTED', 'torrent removed before its sha512 was asked for')
    return await this.#hasher.digest
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#hasher?.close()
  }
}
