import { subtle } from 'node:crypto'
import { mkdir, open, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { ImgdistError } from '../lib/errors.js'

/**
 * One torrent's single file on disk: whole pieces written at their offset once their sha1 has
 * passed, pieces read back whole for uploading (peers ask for a piece's blocks one after the
 * other, so a small cache of whole pieces turns 64 block reads into one), and the hash check of
 * whatever is already on disk when a download resumes.
 */

export class PieceStore {
  readonly path: string
  readonly #fh: FileHandle
  readonly #length: number
  readonly #pieceLength: number
  readonly #hashes: Uint8Array
  readonly #cache = new Map<number, Buffer>()
  /** pieces whose write has not completed: reads must not go to the file for them yet */
  readonly #unwritten = new Map<number, Buffer>()
  readonly #cacheMax: number
  #writes = new Set<Promise<void>>()
  #closed = false

  private constructor (path: string, fh: FileHandle, length: number, pieceLength: number, hashes: Uint8Array, cacheBytes: number) {
    this.path = path
    this.#fh = fh
    this.#length = length
    this.#pieceLength = pieceLength
    this.#hashes = hashes
    this.#cacheMax = Math.max(2, Math.floor(cacheBytes / pieceLength))
  }

  /** `readOnly`: a complete file to seed (the index's images); it must exist with the torrent's length. */
  static async open (path: string, length: number, pieceLength: number, hashes: Uint8Array, opts: { cacheBytes?: number, readOnly?: boolean } = {}): Promise<PieceStore> {
    const cacheBytes = opts.cacheBytes ?? 16 * 1024 * 1024
    try {
      if (opts.readOnly === true) {
        const fh = await open(path, 'r')
        const st = await fh.stat()
        if (st.size !== length) { await fh.close(); throw new Error(`it has ${st.size} bytes, the torrent ${length}`) }
        return new PieceStore(path, fh, length, pieceLength, hashes, cacheBytes)
      }
      await mkdir(dirname(path), { recursive: true })
      const fh = await open(path, 'r+').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return await open(path, 'w+')
        throw err
      })
      const st = await fh.stat()
      if (st.size > length) await fh.truncate(length)
      return new PieceStore(path, fh, length, pieceLength, hashes, cacheBytes)
    } catch (err) {
      throw new ImgdistError('IO_ERROR', `cannot open ${path}: ${(err as Error).message}`, { cause: err })
    }
  }

  pieceSize (i: number): number { return Math.min(this.#pieceLength, this.#length - i * this.#pieceLength) }

  /**
   * sha1 of the piece's bytes against the torrent's (the torrent's info hash was checked against
   * the signed one). WebCrypto's digest runs on libuv's thread pool, not on the event loop: on the
   * loopback pair hashing was 28 % of the downloader's main thread, time in which no socket was read.
   */
  async verify (i: number, buf: Uint8Array): Promise<boolean> {
    const want = this.#hashes.subarray(i * 20, i * 20 + 20)
    const got = new Uint8Array(await subtle.digest('SHA-1', buf))
    return Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want)
  }

  /** Hash-checks the pieces already on disk; calls `have` for each good one. Returns the bytes kept. */
  async scan (have: (i: number) => void, signal?: AbortSignal): Promise<number> {
    const size = (await this.#fh.stat()).size
    const count = Math.ceil(this.#length / this.#pieceLength)
    const buf = Buffer.allocUnsafe(this.#pieceLength)
    let kept = 0
    for (let i = 0; i < count; i++) {
      if (signal?.aborted === true || this.#closed) break
      const len = this.pieceSize(i)
      if (i * this.#pieceLength + len > size) break
      const { bytesRead } = await this.#fh.read(buf, 0, len, i * this.#pieceLength)
      if (bytesRead === len && await this.verify(i, buf.subarray(0, len))) { have(i); kept += len }
    }
    return kept
  }

  /** Writes a verified piece; the buffer is kept in the read cache (other peers will ask for it next). */
  async write (i: number, buf: Buffer): Promise<void> {
    this.#remember(i, buf)
    this.#unwritten.set(i, buf)
    const p = this.#fh.write(buf, 0, buf.length, i * this.#pieceLength).then(() => {}, (err: Error) => {
      throw new ImgdistError('IO_ERROR', `write of piece ${i} to ${this.path} failed: ${err.message}`, { cause: err })
    })
    this.#writes.add(p)
    try { await p } finally { this.#writes.delete(p); this.#unwritten.delete(i) }
  }

  /** Every write issued so far has reached the file (the sha512 pass reads it next). */
  async flush (): Promise<void> { await Promise.allSettled([...this.#writes]) }

  cached (i: number): Buffer | undefined {
    const b = this.#cache.get(i) ?? this.#unwritten.get(i)
    if (b !== undefined) this.#remember(i, b)
    return b
  }

  async read (i: number): Promise<Buffer> {
    const hit = this.cached(i)
    if (hit !== undefined) return hit
    const len = this.pieceSize(i)
    // A fresh buffer each time, never pooled: blocks of it may still sit in a socket's write queue.
    const buf = Buffer.allocUnsafeSlow(len)
    const { bytesRead } = await this.#fh.read(buf, 0, len, i * this.#pieceLength)
    if (bytesRead !== len) throw new ImgdistError('IO_ERROR', `${this.path}: piece ${i} is short on disk (${bytesRead} of ${len} bytes)`)
    this.#remember(i, buf)
    return buf
  }

  #remember (i: number, buf: Buffer): void {
    this.#cache.delete(i)
    this.#cache.set(i, buf)
    while (this.#cache.size > this.#cacheMax) this.#cache.delete(this.#cache.keys().next().value as number)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    await this.flush()
    await this.#fh.close().catch(() => {})
  }
}
