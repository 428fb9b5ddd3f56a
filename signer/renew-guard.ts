import { formatDuration, rfc3339Millis } from '../lib/duration.js'
import { UsageError } from '../lib/errors.js'
import type { IndexDocument, RootSigned } from '../lib/schema.js'
import { expiredAt, tallySignatures } from '../lib/trust.js'

/**
 * Without --root the threshold is unknown, so freshness stands in for it: co-signers complete a
 * version within a day or so of its issue, and an index signed and issued longer ago is most
 * likely the one last published, which is what a renewal is for.
 */
export const FRESH_MS = 24 * 3_600_000

const WAYS_ON = 'co-sign it with imgdist-sign sign (without --renew), or, if a new version really is intended, pass --renew --force'

/**
 * sign --renew drops the input's signatures, so renewing a version the co-signers are still
 * completing throws away a fresh signature (typically a co-signer passing --renew by mistake,
 * after the first endorser's renewal). Refuses that: the index has a signature, has not expired,
 * and is short of the root's index threshold (only signatures that verify count: a stale one
 * left from an earlier version is no endorsement) or, without a root, was issued under
 * FRESH_MS ago. --force skips this check and nothing else.
 */
export function refusePartialRenewal (index: IndexDocument, path: string, now: Date, root: RootSigned | undefined): void {
  const { signed, signatures } = index
  if (signatures.length === 0 || expiredAt(signed.expires, now)) return
  const what = `sign: ${path} v${signed.version}`
  const dropped = `and has not expired (expires ${signed.expires}): --renew would make v${signed.version + 1} and drop its signatures; ${WAYS_ON}`
  if (root !== undefined) {
    const { threshold } = root.roles.index
    const valid = tallySignatures(signed, signatures, root.roles.index, root.keys).valid.length
    if (valid >= threshold) return
    const others = signatures.length > valid ? ` (${signatures.length - valid} other signature(s) do not count: they do not verify or are not by an index key)` : ''
    throw new UsageError(`${what} is partially signed: ${valid} of threshold ${threshold} valid index signature(s)${others}, ${dropped}`)
  }
  const age = now.getTime() - (rfc3339Millis(signed.issued) ?? 0)
  if (age >= FRESH_MS) return
  throw new UsageError(`${what} has ${signatures.length} signature(s), was issued ${formatDuration(Math.max(0, age))} ago (less than 24h; ` +
    `give --root to compare them with the threshold) ${dropped}`)
}
