import { Worker } from 'node:worker_threads'
import { ImgdistError } from '../lib/errors.js'
import type { FromSha1Worker, ToSha1Worker } from './sha1-worker.js'

/**
 * Checks pieces' sha1 on one worker thread shared by every torrent of a Swarm.
 *
 * Why not on the event loop: on the loopback pair hashing was 28 % of the downloader's main
 * thread, time in which no socket was read. Why not WebCrypto's digest on libuv's pool: it
 * copies each piece first, on the main thread (0.3 ms per MiB measured). The worker reads pooled
 * pieces in place (buffer-pool.ts); a piece costs two small messages.
 */
export class Sha1Checker {
  #worker: Worker | undefined
  readonly #waiting = new Map<number, { resolve: (ok: boolean) => void, reject: (err: Error) => void }>()
  #next = 0
  #closed = false

  /** Whether sha1(piece) is `want`. The piece must not change until the promise settles. */
  async check (piece: Uint8Array, want: Uint8Array): Promise<boolean> {
    if (this.#closed) throw new ImgdistError('ABORTED', 'sha1 checker closed')
    const w = this.#start()
    const id = this.#next++
    const done = new Promise<boolean>((resolve, reject) => { this.#waiting.set(id, { resolve, reject }) })
    if (this.#waiting.size === 1) w.ref()
    w.postMessage({ id, piece, want } satisfies ToSha1Worker)
    return await done
  }

  #start (): Worker {
    if (this.#worker !== undefined) return this.#worker
    const w = new Worker(new URL('./sha1-worker.js', import.meta.url))
    w.unref()
    w.on('message', (m: FromSha1Worker) => {
      const p = this.#waiting.get(m.id)
      this.#waiting.delete(m.id)
      // Idle, it must not keep the process alive; busy, its answers must arrive.
      if (this.#waiting.size === 0) w.unref()
      p?.resolve(m.ok)
    })
    const fail = (err: Error): void => {
      this.#worker = undefined
      for (const p of this.#waiting.values()) p.reject(new ImgdistError('INTERNAL', `sha1 worker: ${err.message}`, { cause: err }))
      this.#waiting.clear()
    }
    w.on('error', fail)
    w.on('exit', () => { fail(new Error('stopped')) })
    this.#worker = w
    return w
  }

  async close (): Promise<void> {
    this.#closed = true
    const w = this.#worker
    this.#worker = undefined
    if (w !== undefined) await w.terminate()
  }
}
