import { Transform, type TransformCallback } from 'node:stream'

/**
 * Caps the byte rate of a stream (a site may not want image uploads to fill its storage
 * network). Waits per chunk for as long as the bytes so far should have taken; no buffering
 * beyond the stream's own high-water mark.
 */
export class RateLimit extends Transform {
  readonly #bytesPerSecond: number
  #sent = 0
  readonly #start = Date.now()

  constructor (bytesPerSecond: number) {
    super()
    this.#bytesPerSecond = bytesPerSecond
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#sent += chunk.length
    const due = this.#start + (this.#sent / this.#bytesPerSecond) * 1000
    const wait = due - Date.now()
    if (wait <= 0) { cb(null, chunk); return }
    setTimeout(() => cb(null, chunk), wait)
  }
}
