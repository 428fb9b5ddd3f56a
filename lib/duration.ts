import { UsageError } from './errors.js'

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** Parses `90s`, `15m`, `12h`, `14d`, `2w` (the forms the CLIs and configs accept) into milliseconds. */
export function parseDuration (text: string, what = 'duration'): number {
  const m = /^(\d+)(s|m|h|d|w)$/.exec(text.trim())
  if (m === null) throw new UsageError(`${what} must look like 90s, 15m, 12h, 14d or 2w, got "${text}"`)
  const ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number)
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`${what} is out of range: "${text}"`)
  return ms
}

/** parseDuration's inverse, largest unit first ("14d", "14d 5m 12s"); whole seconds, no weeks. */
export function formatDuration (ms: number): string {
  let rest = Math.round(ms / 1000) * 1000
  const parts: string[] = []
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = UNIT_MS[unit] as number
    const n = Math.floor(rest / size)
    if (n > 0) parts.push(`${n}${unit}`)
    rest -= n * size
  }
  return parts.length > 0 ? parts.join(' ') : '0s'
}

/**
 * One unit, rounded down, for a glance at "how long ago / how long left" on a status line or the
 * fleet page: `45s`, `12m`, `30h`, `13d` (switching unit at 90 s, 90 min, 48 h). The sign is dropped:
 * the caller says "ago" or "in".
 */
export function roughSpan (ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000)
  if (s < 90) return `${s}s`
  if (s < 5400) return `${Math.floor(s / 60)}m`
  if (s < 172800) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86400)}d`
}

/** RFC 3339 UTC, second precision: the only timestamp form signed documents carry. */
export function rfc3339 (date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:Z|([+-])(\d{2}):(\d{2}))$/

/**
 * Epoch milliseconds of an RFC 3339 timestamp, or undefined unless every field is in range.
 * `new Date()` and `Date.parse` roll 2026-02-30 over to March 2 and give NaN for month 13, and a
 * NaN expiry compares as never expired: so the fields must round-trip through a real date.
 */
export function rfc3339Millis (text: string): number | undefined {
  const m = RFC3339.exec(text)
  if (m === null) return undefined
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const date = new Date(0)
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  date.setUTCFullYear(y, mo - 1, d)
  date.setUTCHours(h, mi, s, 0)
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d ||
    date.getUTCHours() !== h || date.getUTCMinutes() !== mi || date.getUTCSeconds() !== s) return undefined
  let offsetMin = 0
  if (m[8] !== undefined) {
    const oh = Number(m[9]); const om = Number(m[10])
    if (oh > 23 || om > 59) return undefined
    offsetMin = (m[8] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const fractionMs = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000)
  return date.getTime() + fractionMs - offsetMin * 60_000
}

export function parseRfc3339 (text: string, what = 'time'): Date {
  if (!RFC3339.test(text)) {
    throw new UsageError(`${what} must be RFC 3339 (e.g. 2026-01-31T12:00:00Z), got "${text}"`)
  }
  const ms = rfc3339Millis(text)
  if (ms === undefined) throw new UsageError(`${what} is not a real date and time: "${text}"`)
  return new Date(ms)
}
