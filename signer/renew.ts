import { rfc3339Millis } from '../lib/duration.js'
import { UsageError } from '../lib/errors.js'
import type { IndexDocument } from '../lib/schema.js'
import { nextIndexVersion } from './next-index.js'

export interface Renewal {
  next: IndexDocument
  /** how long the renewed index is valid from now */
  lifetime: number
  /** true if the lifetime is the previous version's, no --expires given */
  keptPeriod: boolean
}

/**
 * sign --renew: a signed index's expiry cannot change under its signatures, so a later expiry is
 * the next version with the same content. Without an explicit lifetime the renewed index is
 * valid for as long as the endorsers made the previous one valid (issued to expires), so a
 * routine renewal needs no decision and cannot silently shorten or stretch the period.
 */
export function renewIndex (index: IndexDocument, path: string, now: Date, lifetime: number | undefined): Renewal {
  const kept = lifetime ?? previousPeriod(index)
  if (kept === undefined) {
    throw new UsageError(`sign: ${path} v${index.signed.version} expires (${index.signed.expires}) no later than it was issued (${index.signed.issued}), ` +
      'so it has no validity period to keep; give --renew --expires DURATION')
  }
  return { next: nextIndexVersion(index, now, (s) => s, kept, 'sign --renew'), lifetime: kept, keptPeriod: lifetime === undefined }
}

function previousPeriod (index: IndexDocument): number | undefined {
  const issued = rfc3339Millis(index.signed.issued)
  const expires = rfc3339Millis(index.signed.expires)
  return issued !== undefined && expires !== undefined && expires > issued ? expires - issued : undefined
}
