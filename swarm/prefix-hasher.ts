import { Worker } from 'node:worker_threads'
import { ImgdistError } from '../lib/errors.js'
import type { FromHashWorker, ToHashWorker } from './prefix-hash-worker.js'

/**
 * The signed sha512 of the whole image, computed while it downloads: each time the verified,
 * written prefix of the file grows, a worker thread hashes the new bytes (read back from the
 * page cache). When the last piece lands the digest is nearly ready, instead of a second pass
 * over the whole file on the critical path. The bytes hashed are the bytes on disk, exactly
 * what a pass after the download would read (pieces are written once and never rewritten).
 */
export class PrefixHasher {
  readonly #worker: Worker
  readonly #length: number
  readonly digest: Promise<string>
  #sent = 0

  constructor (path: string, length: number) {
    this.#length = length
    this.#worker = new Worker(new URL('./prefix-hash-worker.js', import.meta.url), { workerData: { path, length } })
    this.#worker.unref()
    this.digest = new Promise<string>((resolve, reject) => {
      this.#worker.once('message', (m: FromHashWorker) => {
        if ('digest' in m) resolve(m.digest)
        else reject(new ImgdistError('IO_ERROR', `sha512 of ${path}: ${m.error}`))
      })
      this.#worker.once('error', (err) => { reject(new ImgdistError('INTERNAL', `sha512 worker: ${err.message}`, { cause: err })) })
      this.#worker.once('exit', () => { reject(new ImgdistError('ABORTED', 'sha512 worker stopped')) })
    })
    this.digest.catch(() => {})
  }

  /** the first `bytes` of the file are verified and written */
  advance (bytes: number): void {
    const upTo = Math.min(bytes, this.#length)
    if (upTo <= this.#sent) return
    this.#sent = upTo
    this.#worker.postMessage({ upTo } satisfies ToHashWorker)
  }

  async close (): Promise<void> { await this.#worker.terminate() }
}
