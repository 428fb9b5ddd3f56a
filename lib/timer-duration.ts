import { FormatRegistry, Type, type TString } from '@sinclair/typebox'
import { parseDuration } from './duration.js'

/**
 * A config duration that drives a timer (a poll, a rescan, a retry, an idle timeout, a deadline).
 * Node's timers hold at most 2^31 − 1 ms (24.8 days); a longer delay fires after 1 ms instead,
 * with a warning, so `pollInterval: 30d` would poll the index server a thousand times a second.
 * Such a value is refused when the config is validated, by name, with the file's other problems.
 */

export const MAX_TIMER_MS = 2 ** 31 - 1

/** `max`: a tighter bound than Node's, in ms, with how the description says it (e.g. 10m) */
export function TimerDuration (def: string, description: string, max?: { ms: number, text: string }): TString {
  const maxMs = Math.min(max?.ms ?? MAX_TIMER_MS, MAX_TIMER_MS)
  const format = `imgdist-timer-duration-${maxMs}`
  if (!FormatRegistry.Has(format)) {
    FormatRegistry.Set(format, (text) => {
      try { return parseDuration(text) <= maxMs } catch { return false }
    })
  }
  return Type.String({ format, default: def, description: `${description}: a duration like ${def} (s, m, h, d, w), at most ${max?.text ?? '24d'}` })
}
