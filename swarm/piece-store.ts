import { mkdir, open, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createHash } from 'node:crypto'
import { pread, pwriteAll } from './fd-io.js'
import { ImgdistError } from '../lib/errors.js'
import { BufferPool } from './buffer-pool.js'

/**
 * One torrent's single file on disk: whole pieces written at their offset once their sha1 has
 * passed, pieces read back whole for uploading (peers ask for a piece's blocks one after the
 * other, so a small cache of whole pieces turns 64 block reads into one), and the hash check of
 * whatever is already on disk when a download resumes.
 *
 * Piece buffers come from `pool` and are reused (buffer-pool.ts). A buffer handed out by
 * cached() or read() is held for the caller, who must release() it; the store retires a
 * buffer when it leaves the cache, never before its disk write has completed.
 */

/** bytes per pwrite (see #writeAt) */
const WRITE_CHUNK = 128 * 1024

export interface StoreOptions {
  /** bytes of whole pieces kept in memory for uploading (default 16 MiB) */
  cacheBytes?: number
  /** a complete file to seed (the index's images); it must exist with the torrent's length */
  readOnly?: boolean
}

export class PieceStore {
  readonly path: string
  readonly pool: BufferPool
  readonly #fh: FileHandle
  readonly #length: number
  readonly #pieceLength: number
  readonly #hashes: Uint8Array
  readonly #cache = new Map<number, Buffer>()
  /** pieces whose write has not completed: they stay in the cache, and reads must not go to the file for them yet */
  readonly #unwritten = new Set<number>()
  readonly #cacheMax: number
  #writes = new Set<Promise<void>>()
  /** reads in flight on the descriptor: close() waits for them (fd-io.ts) */
  readonly #reads = new Set<Promise<number>>()
  #backlog = 0
  #closed = false

  private constructor (path: string, fh: FileHandle, length: number, pieceLength: number, hashes: Uint8Array, opts: StoreOptions) {
    this.path = path
    this.#fh = fh
    this.#length = length
    this.#pieceLength = pieceLength
    this.#hashes = hashes
    this.#cacheMax = Math.max(2, Math.floor((opts.cacheBytes ?? 16 * 1024 * 1024) / pieceLength))
    this.pool = new BufferPool(pieceLength)
  }

  static async open (path: string, length: number, pieceLength: number, hashes: Uint8Array, opts: StoreOptions = {}): Promise<PieceStore> {
    try {
      if (opts.readOnly === true) {
        const fh = await open(path, 'r')
        const st = await fh.stat()
        if (st.size !== length) { await fh.close(); throw new Error(`it has ${st.size} bytes, the torrent ${length}`) }
        return new PieceStore(path, fh, length, pieceLength, hashes, opts)
      }
      await mkdir(dirname(path), { recursive: true })
      const fh = await open(path, 'r+').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return await open(path, 'w+')
        throw err
      })
      const st = await fh.stat()
      if (st.size > length) await fh.truncate(length)
      return new PieceStore(path, fh, length, pieceLength, hashes, opts)
    } catch (err) {
      throw new ImgdistError('IO_ERROR', `cannot open ${path}: ${(err as Error).message}`, { cause: err })
    }
  }

  pieceSize (i: number): number { return Math.min(this.#pieceLength, this.#length - i * this.#pieceLength) }

  /**
   * sha1 of the piece's bytes against the torrent's (the torrent's info hash was checked against
   * the signed one). On the event loop, on purpose: a worker thread (tried in session 4) gained
   * no speed on the loopback pair, and each message cloned a view of the pooled buffer into the
   * worker's heap, where the worker's rare collections left hundreds of MiB reachable; WebCrypto's
   * digest copies every piece on the main thread first (0.3 ms per MiB).
   */
  verify (i: number, buf: Uint8Array): boolean {
    return createHash('sha1').update(buf).digest().equals(this.#hashes.subarray(i * 20, i * 20 + 20))
  }

  /** Hash-checks the pieces already on disk; calls `have` for each good one. Returns the bytes kept. */
  async scan (have: (i: number) => void, signal?: AbortSignal): Promise<number> {
    const size = (await this.#fh.stat()).size
    const count = Math.ceil(this.#length / this.#pieceLength)
    const buf = this.pool.take(this.#pieceLength)
    let kept = 0
    try {
      for (let i = 0; i < count; i++) {
        if (signal?.aborted === true || this.#closed) break
        const len = this.pieceSize(i)
        if (i * this.#pieceLength + len > size) break
        const bytesRead = await this.#pread(buf, len, i * this.#pieceLength)
        if (bytesRead === len && this.verify(i, buf.subarray(0, len))) { have(i); kept += len }
      }
    } finally { this.pool.retire(buf) }
    return kept
  }

  /** bytes of pieces handed to write() whose write has not completed: the session stops asking for more above a bound */
  get backlog (): number { return this.#backlog }

  /** Writes a verified piece, taking `buf` over: it stays in the read cache (other peers will ask for it next). */
  async write (i: number, buf: Buffer): Promise<void> {
    this.#unwritten.add(i)
    this.#backlog += buf.length
    this.#remember(i, buf)
    this.pool.hold(buf)
    const p = this.#writeAt(buf, i * this.#pieceLength).catch((err: Error) => {
      throw new ImgdistError('IO_ERROR', `write of piece ${i} to ${this.path} failed: ${err.message}`, { cause: err })
    })
    this.#writes.add(p)
    try { await p } finally {
      this.#writes.delete(p)
      this.#unwritten.delete(i)
      this.#backlog -= buf.length
      this.pool.release(buf)
      this.#evict()
    }
  }

  /**
   * A piece goes to disk in 128 KiB pwrites, one after the other. The kernel sizes a page-cache
   * folio by the write: a 1 MiB pwrite takes 1 MiB folios, split from the high-order free blocks
   * that a VM's host has taken back (virtio-balloon free-page reporting, on the bench machine),
   * and every first touch of those pages is a fault in the host, billed to the copy. Writes of
   * 128 KiB and less take their folios from the low-order free lists, which reporting leaves
   * alone, while those last. Measured (session 14):
   * - `dd` of 512 MiB after a 4 s pause: 1.0 s of system time in 1 MiB blocks, 0.11 in 128 KiB,
   *   0.34 in 256 KiB; of 4 GiB, once each: 7.4 s in 1 MiB, 4.9 in 128 KiB.
   * - Swarm bench, 128 MiB warm, two alternating pairs: the pool threads' CPU per agent fell from
   *   0.21 to 0.08 s, 12.7/12.9 against 11.9/12.0 CPU-s/GiB; the loopback pair went from
   *   298-314 to 350-360 MiB/s.
   * Pieces still go out concurrently (one chain each). Tried and dropped the same session: one
   * chain for the whole store, to keep the pool threads off each other's inode lock; each
   * chunk then waited for a turn of the busy event loop and the pair fell to 252-290 MiB/s.
   * Tried before: 32 KiB pwrites (session 8: within the noise of that day's runs); 64 concurrent 16 KiB pwrites per piece (session 13: the pool threads spun on
   * the inode lock); each 16 KiB block written with writeSync as it arrived (session 9: more
   * main-thread time per call than the copy saved).
   */
  async #writeAt (buf: Buffer, pos: number): Promise<void> {
    // The descriptor is used directly, not through the FileHandle: once close() has begun its
    // number may be closed and reused by another file, so nothing new may start on it.
    if (this.#closed) throw new ImgdistError('IO_ERROR', `${this.path}: the store is closed`)
    await pwriteAll(this.#fh.fd, buf, 0, buf.length, pos, WRITE_CHUNK)
  }

  /** A pread that close() waits for (see #writeAt). */
  async #pread (buf: Buffer, len: number, pos: number): Promise<number> {
    if (this.#closed) throw new ImgdistError('IO_ERROR', `${this.path}: the store is closed`)
    const p = pread(this.#fh.fd, buf, 0, len, pos)
    this.#reads.add(p)
    try { return await p } finally { this.#reads.delete(p) }
  }

  /** Every write issued so far has reached the file (the sha512 pass reads it next). */
  async flush (): Promise<void> { await Promise.allSettled([...this.#writes]) }

  /** The piece from the cache, held for the caller (release() it), or undefined. */
  cached (i: number): Buffer | undefined {
    const b = this.#cache.get(i)
    if (b === undefined) return undefined
    this.#remember(i, b)
    this.pool.hold(b)
    return b
  }

  /** The piece, from the cache or the file, held for the caller (release() it). */
  async read (i: number): Promise<Buffer> {
    const hit = this.cached(i)
    if (hit !== undefined) return hit
    const len = this.pieceSize(i)
    const buf = this.pool.take(len)
    try {
      const bytesRead = await this.#pread(buf, len, i * this.#pieceLength)
      if (bytesRead !== len) throw new ImgdistError('IO_ERROR', `${this.path}: piece ${i} is short on disk (${bytesRead} of ${len} bytes)`)
    } catch (err) { this.pool.retire(buf); throw err }
    // Read twice at once (two peers asked): keep the first, hand out the cached one.
    const again = this.cached(i)
    if (again !== undefined) { this.pool.retire(buf); return again }
    this.pool.hold(buf)
    this.#remember(i, buf)
    return buf
  }

  /**
   * A copy of `length` bytes of piece `i` from `begin`, in a buffer of its own: for an upload that
   * must not keep a piece buffer alive (upload.ts). The cache is neither filled nor reordered.
   */
  async readBlock (i: number, begin: number, length: number): Promise<Buffer> {
    if (begin + length > this.pieceSize(i)) throw new RangeError(`block ${i}/${begin}/${length} is past the piece`)
    const out = Buffer.allocUnsafeSlow(length)
    // A piece whose write has not completed is always in the cache (#evict keeps it): the file may not hold it yet.
    const hit = this.#cache.get(i)
    if (hit !== undefined) { hit.copy(out, 0, begin, begin + length); return out }
    const bytesRead = await this.#pread(out, length, i * this.#pieceLength + begin)
    if (bytesRead !== length) throw new ImgdistError('IO_ERROR', `${this.path}: piece ${i} is short on disk (${bytesRead} of ${length} bytes at ${begin})`)
    return out
  }

  release (buf: Buffer): void { this.pool.release(buf) }

  #remember (i: number, buf: Buffer): void {
    this.#cache.delete(i)
    this.#cache.set(i, buf)
    this.#evict()
  }

  /** Oldest first, pieces whose disk write is done leave the cache and go back to the pool. */
  #evict (): void {
    if (this.#cache.size <= this.#cacheMax) return
    for (const [i, b] of this.#cache) {
      if (this.#cache.size <= this.#cacheMax) return
      if (this.#unwritten.has(i)) continue
      this.#cache.delete(i)
      this.pool.retire(b)
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    await this.flush()
    await Promise.allSettled([...this.#reads])
    await this.#fh.close().catch(() => {})
  }
}
