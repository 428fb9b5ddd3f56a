import { FormatRegistry, Type, type TString } from '@sinclair/typebox'
import { parseDuration } from './duration.js'

/**
 * A config duration that drives a timer (a poll, a rescan, a retry, an idle timeout). Node's
 * timers hold at most 2^31 − 1 ms (24.8 days); a longer delay fires after 1 ms instead, with a
 * warning, so `pollInterval: 30d` would poll the index server a thousand times a second. Such a
 * value is refused when the config is validated, by name, with the file's other problems.
 */

export const MAX_TIMER_MS = 2 ** 31 - 1
const FORMAT = 'imgdist-timer-duration'

FormatRegistry.Set(FORMAT, (text) => {
  try { return parseDuration(text) <= MAX_TIMER_MS } catch { return false }
})

export function TimerDuration (def: string, description: string): TString {
  return Type.String({ format: FORMAT, default: def, description: `${description}: a duration like ${def} (s, m, h, d, w), at most 24d` })
}
