import { MAX_WAIT_SECONDS } from '../lib/held-get.js'
import type { CatalogueStore } from './catalogue-store.js'

/**
 * The server side of held conditional GETs of index.yaml (lib/held-get.ts): an agent that already
 * has the current index is answered when a new index is published or its wait runs out. Agents
 * then see a release within a round trip of its publication instead of after their poll
 * interval (5 minutes by default), at the cost of one idle socket per agent.
 */

/** Holds beyond this many at once are answered at once (the client falls back to its poll interval). */
export const DEFAULT_MAX_WATCHERS = 10_000

export type WatchEnd = 'changed' | 'timeout' | 'closing' | 'gone'

interface Watcher { resolve: (end: WatchEnd) => void, timer: NodeJS.Timeout }

export class IndexWatch {
  readonly #watchers = new Set<Watcher>()
  readonly #max: number
  /** the longest hold granted, seconds */
  readonly maxWaitSeconds: number
  #closed = false

  constructor (catalogue: CatalogueStore, opts: { maxWatchers?: number, maxWaitSeconds?: number } = {}) {
    this.#max = opts.maxWatchers ?? DEFAULT_MAX_WATCHERS
    this.maxWaitSeconds = opts.maxWaitSeconds ?? MAX_WAIT_SECONDS
    catalogue.onChange((c) => { if (c.kind === 'index') this.#endAll('changed') })
  }

  get watching (): number { return this.#watchers.size }

  /** Whether one more request may be held now. */
  canHold (): boolean { return !this.#closed && this.#watchers.size < this.#max }

  /**
   * Resolves when the index changes, after `ms`, when the server starts closing, or when `gone`
   * aborts (the client went away): whichever comes first.
   */
  async wait (ms: number, gone: AbortSignal): Promise<WatchEnd> {
    if (this.#closed) return 'closing'
    if (gone.aborted) return 'gone'
    return await new Promise<WatchEnd>((resolve) => {
      const w: Watcher = {
        resolve: (end) => {
          clearTimeout(w.timer)
          gone.removeEventListener('abort', onGone)
          this.#watchers.delete(w)
          resolve(end)
        },
        timer: setTimeout(() => { w.resolve('timeout') }, ms)
      }
      const onGone = (): void => { w.resolve('gone') }
      gone.addEventListener('abort', onGone, { once: true })
      this.#watchers.add(w)
    })
  }

  /** Releases every held request (the server is closing) and refuses new holds. Idempotent. */
  close (): void {
    this.#closed = true
    this.#endAll('closing')
  }

  #endAll (end: WatchEnd): void {
    for (const w of [...this.#watchers]) w.resolve(end)
  }
}
