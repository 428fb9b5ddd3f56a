import { UsageError } from '../lib/errors.js'

/** now + duration, refusing dates JavaScript (and RFC 3339) cannot represent. */
export function addDuration (now: Date, ms: number): Date {
  const d = new Date(now.getTime() + ms)
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() > 9999) throw new UsageError('duration reaches beyond the year 9999')
  return d
}

const UNITS: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]]

/** A lifetime as the --expires flags take it, largest unit first ("14d", "14d 5m 12s"); whole seconds. */
export function formatDuration (ms: number): string {
  let rest = Math.round(ms / 1000) * 1000
  const parts: string[] = []
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size)
    if (n > 0) parts.push(`${n}${unit}`)
    rest -= n * size
  }
  return parts.length > 0 ? parts.join(' ') : '0s'
}
