/**
 * Retry timing shared by the agent's state machine and its HTTP clients (Glance, Keystone):
 * exponential backoff with ±20% jitter, so a fleet that failed together does not retry
 * together, and a server's Retry-After (seconds or HTTP date) honoured but capped, so a confused
 * server cannot park the agent for hours. Pure: the caller supplies randomness and the clock.
 */

export interface BackoffOptions { baseMs: number, maxMs: number }

export function backoffMs (attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)))
  return Math.round(base * (0.8 + random() * 0.4))
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
  return backoffMs(attempt, opts.baseMs, opts.maxMs, random)
}
