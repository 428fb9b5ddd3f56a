/**
 * Piece-sized buffers, reused instead of allocated per piece.
 *
 * Why: every piece passes through a piece-sized buffer twice (assembled from blocks, read back
 * to serve other peers). Fresh buffers are external memory to V8, and 1 GiB of them forced about
 * forty full mark-compacts per GiB on the loopback pair, and left the agent's RSS at the mercy
 * of when the collector ran (bench:memory peaked at 274 MiB with 4 MiB pieces).
 *
 * A buffer goes back to the free list only when its owner has retired it *and* nothing still
 * reads it: every socket write of a block and every disk write holds it until its callback.
 * Holds and retirement are kept in weak collections, so a hold whose callback never came costs
 * a buffer's reuse, never a leak or a buffer reused under a pending write.
 */
export class BufferPool {
  readonly size: number
  readonly #maxFree: number
  readonly #free: ArrayBuffer[] = []
  readonly #holds = new WeakMap<ArrayBufferLike, number>()
  readonly #retired = new WeakSet<ArrayBufferLike>()
  readonly #mine = new WeakSet<ArrayBufferLike>()
  /** buffers handed out since creation, and how many of them were reused ones: for the tests and the debug log */
  taken = 0
  reused = 0

  /** size: the piece length; at most `keepBytes` of idle buffers are kept for reuse */
  constructor (size: number, keepBytes = 8 * 1024 * 1024) {
    this.size = size
    this.#maxFree = Math.max(2, Math.floor(keepBytes / size))
  }

  /** A buffer of `length` bytes (≤ size), its contents undefined. */
  take (length: number): Buffer {
    if (length > this.size) throw new RangeError(`buffer of ${length} bytes from a pool of ${this.size}`)
    this.taken++
    let ab = this.#free.pop()
    if (ab !== undefined) { this.reused++; this.#retired.delete(ab) } else { ab = new ArrayBuffer(this.size); this.#mine.add(ab) }
    return Buffer.from(ab, 0, length)
  }

  /** Something reads `buf` until release(): a socket or disk write, a caller between two awaits. */
  hold (buf: Uint8Array): void {
    const ab = buf.buffer
    if (this.#mine.has(ab)) this.#holds.set(ab, (this.#holds.get(ab) ?? 0) + 1)
  }

  release (buf: Uint8Array): void {
    const ab = buf.buffer
    const n = (this.#holds.get(ab) ?? 0) - 1
    if (n > 0) { this.#holds.set(ab, n); return }
    this.#holds.delete(ab)
    if (this.#retired.has(ab)) this.#recycle(ab)
  }

  /** The owner no longer needs `buf`: it is reused once the last hold is released. Buffers not from this pool are ignored. */
  retire (buf: Uint8Array): void {
    const ab = buf.buffer
    if (!this.#mine.has(ab) || this.#retired.has(ab)) return
    this.#retired.add(ab)
    if ((this.#holds.get(ab) ?? 0) === 0) this.#recycle(ab)
  }

  #recycle (ab: ArrayBufferLike): void {
    if (this.#free.length < this.#maxFree && ab instanceof ArrayBuffer && !this.#free.includes(ab)) this.#free.push(ab)
  }
}
