/** Exponential backoff with ±20% jitter, so a fleet that failed together does not retry together. */
export function backoffMs (attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)))
  return Math.round(base * (0.8 + random() * 0.4))
}
