/**
 * Retry timing for the glance target's HTTP calls: exponential backoff with full jitter, and
 * a server's Retry-After (seconds or HTTP date) honoured but capped, so a confused server cannot
 * park the agent for hours. Pure: the caller supplies randomness and the clock.
 */

export interface BackoffOptions { baseMs: number, maxMs: number }

export function backoffDelay (attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}

/** Milliseconds to wait per a Retry-After header, or undefined if absent or unreadable. */
export function parseRetryAfter (value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined || v.trim() === '') return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - nowMs)
}

export function retryDelay (attempt: number, retryAfter: string | string[] | undefined, opts: BackoffOptions,
  nowMs: number, random: () => number = Math.random): number {
  const server = parseRetryAfter(retryAfter, nowMs)
  if (server !== undefined) return Math.min(server, opts.maxMs)
  return backoffDelay(attempt, opts, random)
}
