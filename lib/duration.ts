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

/** RFC 3339 UTC, second precision: the only timestamp form signed documents carry. */
export function rfc3339 (date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export function parseRfc3339 (text: string, what = 'time'): Date {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    throw new UsageError(`${what} must be RFC 3339 (e.g. 2026-01-31T12:00:00Z), got "${text}"`)
  }
  const d = new Date(text)
  if (Number.isNaN(d.getTime())) throw new UsageError(`${what} is not a real date: "${text}"`)
  return d
}
