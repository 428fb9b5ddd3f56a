import { FormatRegistry, Type, type TString } from '@sinclair/typebox'
import { parseDuration } from './duration.js'

/**
 * Config durations (`90s`, `15m`, `12h`, `14d`, `2w`) as TypeBox formats that run parseDuration
 * itself. A pattern alone let through what parseDuration then refuses (`0s`, or more digits than
 * a safe integer holds), so such a config passed validation and failed later without naming the
 * field; a format refuses it at start-up, by name, together with the file's other problems.
 *
 * Node's timers hold at most 2^31 − 1 ms (24.8 days); a longer delay fires after 1 ms instead,
 * with a warning, so `pollInterval: 30d` would poll the index server a thousand times a second.
 * A duration that drives a timer is a TimerDuration, bounded to that.
 */

export const MAX_TIMER_MS = 2 ** 31 - 1

function durationFormat (name: string, maxMs: number): string {
  if (!FormatRegistry.Has(name)) {
    FormatRegistry.Set(name, (text) => {
      try { return parseDuration(text) <= maxMs } catch { return false }
    })
  }
  return name
}

/** Any duration parseDuration accepts; without `def` the field has no default. */
export function DurationString (def: string | undefined, description: string): TString {
  const format = durationFormat('imgdist-duration', Number.MAX_SAFE_INTEGER)
  const like = def ?? '90s, 15m, 12h, 14d'
  return Type.String({ format, ...(def !== undefined ? { default: def } : {}), description: `${description}: a duration like ${like} (s, m, h, d, w), above 0` })
}

/**
 * A duration that drives a timer (a poll, a rescan, a retry, an idle timeout, a deadline).
 * `max`: a tighter bound than Node's, in ms, with how the description says it (e.g. 10m).
 */
export function TimerDuration (def: string, description: string, max?: { ms: number, text: string }): TString {
  const maxMs = Math.min(max?.ms ?? MAX_TIMER_MS, MAX_TIMER_MS)
  const format = durationFormat(`imgdist-timer-duration-${maxMs}`, maxMs)
  return Type.String({ format, default: def, description: `${description}: a duration like ${def} (s, m, h, d, w), above 0 and at most ${max?.text ?? '24d'}` })
}
