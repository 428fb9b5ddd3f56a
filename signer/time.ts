import { UsageError } from '../lib/errors.js'

/** now + duration, refusing dates JavaScript (and RFC 3339) cannot represent. */
export function addDuration (now: Date, ms: number): Date {
  const d = new Date(now.getTime() + ms)
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() > 9999) throw new UsageError('duration reaches beyond the year 9999')
  return d
}
