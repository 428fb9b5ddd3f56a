import { Worker } from 'node:worker_threads'
import { ImgdistError } from '../lib/errors.js'
import type { CheckedUpload, UploadCheck } from './upload-check.js'
import type { FromCheckWorker } from './upload-check-worker.js'

/**
 * What one check of an uploaded document may cost. The largest index the schema allows takes
 * about 6 s and a heap of 256–384 MiB on a 2-core machine (measured, Node 20); a body within
 * the lexer's bounds (lib/document.ts) should cost no more, so the defaults, twice that, only
 * stop what those bounds did not foresee.
 */
export interface UploadLimits {
  /** V8 old-generation heap of the worker thread, MiB */
  heapMiB: number
  /** wall-clock time from handing the document over to the answer */
  deadlineMs: number
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { heapMiB: 768, deadlineMs: 30_000 }

/**
 * Parses and verifies uploaded documents (PUT of index.yaml and root.yaml) in one long-lived
 * worker thread, one at a time, so the event loop goes on answering held GETs, the tracker, the
 * web seed and /healthz meanwhile. A check over its deadline or heap is stopped by terminating
 * the worker (`PARSE_LIMIT`), and the next check starts a new one.
 */
export class UploadChecker {
  readonly limits: UploadLimits
  #worker: Promise<Worker> | undefined
  #current: Worker | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor (limits: Partial<UploadLimits> = {}) {
    this.limits = { ...DEFAULT_UPLOAD_LIMITS, ...limits }
  }

  async check (c: UploadCheck): Promise<CheckedUpload> {
    const run = this.#queue.then(async () => await this.#run(c))
    this.#queue = run.catch(() => {})
    return await run
  }

  async close (): Promise<void> {
    this.#closed = true
    const w = this.#worker
    this.#worker = undefined
    this.#current = undefined
    await (await w?.catch(() => undefined))?.terminate()
  }

  #start (): Promise<Worker> {
    const w = new Worker(new URL('./upload-check-worker.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMiB }
    })
    w.unref() // never what keeps the process alive
    // An idle worker that fails is replaced at the next check; unheard, its 'error' would end the process.
    w.on('error', () => { this.#drop(w) }).on('exit', () => { this.#drop(w) })
    const started = new Promise<Worker>((resolve, reject) => {
      w.once('message', () => { this.#current = w; resolve(w) })
      w.once('error', reject)
      w.once('exit', (code) => { reject(new Error(`exited with code ${code} while starting`)) })
    })
    started.catch(() => {})
    return started
  }

  /** Forgets `w` if it is the current worker, and stops it. */
  #drop (w: Worker): void {
    if (this.#current === w) {
      this.#current = undefined
      this.#worker = undefined
    }
    void w.terminate()
  }

  async #run (c: UploadCheck): Promise<CheckedUpload> {
    if (this.#closed) throw new ImgdistError('SHUTTING_DOWN', 'the index server is stopping; publish again after its restart')
    this.#worker ??= this.#start()
    let w: Worker
    try { w = await this.#worker } catch (err) {
      this.#worker = undefined
      throw new ImgdistError('INTERNAL', `the ${c.kind} check worker did not start: ${(err as Error).message}`, { cause: err })
    }
    const { heapMiB, deadlineMs } = this.limits
    return await new Promise<CheckedUpload>((resolve, reject) => {
      const settle = (fn: () => void): void => {
        clearTimeout(timer)
        w.off('message', onMessage).off('error', onError).off('exit', onExit)
        fn()
      }
      const onMessage = (m: FromCheckWorker): void => {
        if ('result' in m) settle(() => { resolve(m.result) })
        else if ('error' in m) settle(() => { reject(new ImgdistError(m.error.code, m.error.message)) })
      }
      const onError = (err: Error & { code?: string }): void => {
        this.#drop(w)
        settle(() => {
          reject(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? new ImgdistError('PARSE_LIMIT', `parsing and verifying the ${c.kind} needed more than ${heapMiB} MiB of memory, the server's limit; nothing changed`, { cause: err })
            : new ImgdistError('INTERNAL', `the ${c.kind} check failed: ${err.message}`, { cause: err }))
        })
      }
      const onExit = (code: number): void => {
        this.#drop(w)
        settle(() => {
          reject(this.#closed
            ? new ImgdistError('SHUTTING_DOWN', 'the index server is stopping; publish again after its restart')
            : new ImgdistError('INTERNAL', `the ${c.kind} check worker exited with code ${code}`))
        })
      }
      const timer = setTimeout(() => {
        this.#drop(w)
        settle(() => {
          reject(new ImgdistError('PARSE_LIMIT', `parsing and verifying the ${c.kind} took longer than ${deadlineMs / 1000} s, the server's limit; nothing changed ` +
            '(the largest valid index takes a few seconds: if this one is ordinary, the server is overloaded; try again later)'))
        })
      }, deadlineMs)
      w.on('message', onMessage).once('error', onError).once('exit', onExit)
      // A copy of its own to hand over: the body may share its memory with other buffers.
      const bytes = new Uint8Array(c.bytes)
      w.postMessage({ ...c, bytes } satisfies UploadCheck, [bytes.buffer])
    })
  }
}
