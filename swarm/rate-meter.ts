/**
 * Bytes per second over the last few seconds (1 s buckets), and a token bucket for the
 * configured upload/download limits. Small enough to keep here rather than pull in speedometer
 * and a throttling stream for two numbers.
 */

export class RateMeter {
  readonly #buckets: Float64Array
  #slot = -1
  #total = 0

  constructor (seconds = 5) { this.#buckets = new Float64Array(seconds) }

  add (n: number, now = Date.now()): void {
    this.#roll(now)
    this.#buckets[this.#slot % this.#buckets.length] = (this.#buckets[this.#slot % this.#buckets.length] as number) + n
    this.#total += n
  }

  get total (): number { return this.#total }

  /** bytes per second over the complete buckets of the window */
  rate (now = Date.now()): number {
    this.#roll(now)
    let sum = 0
    for (const b of this.#buckets) sum += b
    return sum / this.#buckets.length
  }

  #roll (now: number): void {
    const slot = Math.floor(now / 1000)
    if (this.#slot < 0) { this.#slot = slot; return }
    const steps = Math.min(slot - this.#slot, this.#buckets.length)
    for (let k = 1; k <= steps; k++) this.#buckets[(this.#slot + k) % this.#buckets.length] = 0
    if (slot > this.#slot) this.#slot = slot
  }
}

/** Bytes per second with a one-second burst; `limit` 0 means unlimited. */
export class TokenBucket {
  readonly limit: number
  #tokens: number
  #at = Date.now()

  constructor (limit: number) { this.limit = limit; this.#tokens = limit }

  /** Takes n bytes' worth if available now; otherwise returns the ms to wait first. */
  take (n: number, now = Date.now()): number {
    if (this.limit <= 0) return 0
    this.#tokens = Math.min(this.limit, this.#tokens + (now - this.#at) * this.limit / 1000)
    this.#at = now
    if (this.#tokens >= n || this.#tokens >= this.limit) { this.#tokens -= n; return 0 }
    return Math.ceil((n - this.#tokens) * 1000 / this.limit)
  }
}
