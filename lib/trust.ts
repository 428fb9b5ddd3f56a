import { canonicalBytes } from './canonical-json.js'
import { contentDigest, documentType } from './document.js'
import { rfc3339, rfc3339Millis } from './duration.js'
import { TrustError } from './errors.js'
import { decodePublicKey, keyIdOf, verifyBytes } from './keys.js'
import { IndexSigned, RootSigned, type IndexDocument, type Role, type RootDocument, type Signature, type SignedDocument } from './schema.js'
import { schemaProblems } from './validate.js'

/**
 * The trust rules of DESIGN.md §3 (TUF semantics): pure functions of (trusted root, candidate
 * document, clock, last accepted version). Callers keep the last good state when these throw.
 */

export interface LastAccepted { version: number, digest: string }
export interface AcceptedIndex { doc: IndexDocument, digest: string, signers: string[] }

/** Why a string could escape or confuse a directory when used as a file name; undefined if safe. */
export function unsafeNameReason (s: string): string | undefined {
  if (s.length === 0) return 'is empty'
  if (s.includes('\0')) return 'contains a NUL byte'
  if (s.includes('/') || s.includes('\\')) return 'contains a path separator'
  if (s.split(/[/\\]/).some((seg) => seg === '..') || s.includes('..')) return 'contains ".."'
  if (s.startsWith('.')) return 'starts with a dot'
  if (/[\x00-\x1f\x7f]/.test(s)) return 'contains a control character'
  return undefined
}

/** An expiry that is not a real date counts as expired: a NaN comparison would never expire. */
export function expiredAt (expires: string, now: Date): boolean {
  const at = rfc3339Millis(expires)
  return at === undefined || at <= now.getTime()
}

export function assertNotExpired (signed: { expires: string, type?: string, version?: number }, now: Date, what: string): void {
  if (expiredAt(signed.expires, now)) {
    throw new TrustError('EXPIRED', `${what} expired at ${signed.expires} (now ${now.toISOString()})`)
  }
}

/**
 * When a catalogue goes out of force: the earlier of its root's and its index's expires, as
 * RFC 3339 UTC (milliseconds only if the date has them). An unreadable date counts as long past,
 * as for expiredAt.
 */
export function catalogueExpires (rootExpires: string, indexExpires: string): string {
  const at = new Date(catalogueExpiresMs(rootExpires, indexExpires))
  return at.getUTCMilliseconds() === 0 ? rfc3339(at) : at.toISOString()
}

/** catalogueExpires as epoch milliseconds, for a timer. */
export function catalogueExpiresMs (rootExpires: string, indexExpires: string): number {
  return Math.min(rfc3339Millis(rootExpires) ?? 0, rfc3339Millis(indexExpires) ?? 0)
}

function requireShape<T> (schema: typeof RootSigned | typeof IndexSigned, signed: unknown, what: string): T {
  const problems = schemaProblems(schema, signed)
  if (problems.length > 0) throw new TrustError('SCHEMA_INVALID', `${what} fails the schema: ${problems.join('; ')}`)
  return signed as T
}

/** The schema's pattern admits 2026-02-30 and 2026-13-45; a signed date must be a real one. */
function requireRealTimes (times: Array<[string, string | undefined]>, what: string): void {
  for (const [field, value] of times) {
    if (value !== undefined && rfc3339Millis(value) === undefined) {
      throw new TrustError('SCHEMA_INVALID', `${what} ${field} ${JSON.stringify(value)} is not a real date and time`)
    }
  }
}

/** Schema plus the cross-field rules a schema cannot say: key ids match keys, roles name known keys. */
export function checkRootShape (doc: SignedDocument<unknown>, what = 'root'): RootDocument {
  if (documentType(doc) !== 'root') throw new TrustError('TYPE_UNKNOWN', `${what} has signed.type "index"; expected "root"`)
  const signed = requireShape<RootSigned>(RootSigned, doc.signed, what)
  requireRealTimes([['expires', signed.expires]], what)
  for (const [keyid, pub] of Object.entries(signed.keys)) {
    let raw: Uint8Array
    try { raw = decodePublicKey(pub) } catch (err) { throw new TrustError('SCHEMA_INVALID', `${what} keys.${keyid}: ${(err as Error).message}`) }
    if (keyIdOf(raw) !== keyid) throw new TrustError('SCHEMA_INVALID', `${what} keys.${keyid}: key id is not the sha256 of the key`)
  }
  for (const roleName of ['root', 'index'] as const) {
    const role = signed.roles[roleName]
    for (const keyid of role.keyids) {
      if (signed.keys[keyid] === undefined) throw new TrustError('SCHEMA_INVALID', `${what} roles.${roleName}: key ${keyid} is not in keys`)
    }
    if (role.threshold > role.keyids.length) {
      throw new TrustError('SCHEMA_INVALID', `${what} roles.${roleName}: threshold ${role.threshold} is more than its ${role.keyids.length} keys`)
    }
  }
  return { signed, signatures: doc.signatures }
}

/** Schema plus file-name safety and unique ids. */
export function checkIndexShape (doc: SignedDocument<unknown>, what = 'index'): IndexDocument {
  if (documentType(doc) !== 'index') throw new TrustError('TYPE_UNKNOWN', `${what} has signed.type "root"; expected "index"`)
  // Path safety first, with its own code, so `id: ../../etc` is named for what it is.
  const raw = doc.signed as { images?: unknown }
  if (Array.isArray(raw.images)) {
    raw.images.forEach((img: unknown, i: number) => {
      for (const field of ['id', 'name', 'version'] as const) {
        const v = (img as Record<string, unknown> | null)?.[field]
        const reason = typeof v === 'string' ? unsafeNameReason(v) : undefined
        if (reason !== undefined) throw new TrustError('UNSAFE_NAME', `${what} images[${i}].${field} ${JSON.stringify(v)} ${reason}`)
      }
    })
  }
  const signed = requireShape<IndexSigned>(IndexSigned, doc.signed, what)
  requireRealTimes([
    ['issued', signed.issued], ['expires', signed.expires],
    ...signed.images.map((img, i): [string, string | undefined] => [`images[${i}].expires`, img.expires]),
    ...signed.revoked.map((r, i): [string, string | undefined] => [`revoked[${i}].at`, r.at])
  ], what)
  // An id is listed or revoked, once: listed-and-revoked would be served by the index server
  // while agents retire it, and a repeated revocation leaves two reasons to choose from.
  const listed = new Map<string, number>()
  signed.images.forEach((img, i) => {
    if (listed.has(img.id)) throw new TrustError('DUPLICATE_ID', `${what} images[${i}].id "${img.id}" appears more than once`)
    listed.set(img.id, i)
  })
  const revoked = new Set<string>()
  signed.revoked.forEach((r, i) => {
    if (revoked.has(r.id)) throw new TrustError('DUPLICATE_ID', `${what} revoked[${i}].id "${r.id}" appears more than once`)
    revoked.add(r.id)
    const at = listed.get(r.id)
    if (at !== undefined) throw new TrustError('DUPLICATE_ID', `${what} revoked[${i}].id "${r.id}" is also listed as images[${at}]; an id is either listed or revoked`)
  })
  return { signed, signatures: doc.signatures }
}

export interface SignatureTally {
  /** distinct keys of the role whose signature verifies */
  valid: string[]
  /** keys of the role whose signature does not verify (content changed after signing, or forged) */
  forged: string[]
  /** keys outside the role */
  outsiders: string[]
}

/** Sorts `signatures` over `signed` by what they are worth to `role`; a bad signature is sorted, not thrown. */
export function tallySignatures (signed: unknown, signatures: Signature[], role: Role, keys: Record<string, string>): SignatureTally {
  const message = canonicalBytes(signed)
  const valid = new Set<string>()
  const forged: string[] = []
  const outsiders: string[] = []
  for (const s of signatures) {
    if (!role.keyids.includes(s.keyid) || keys[s.keyid] === undefined) { outsiders.push(s.keyid); continue }
    if (verifyBytes(message, s.sig, decodePublicKey(keys[s.keyid] as string))) valid.add(s.keyid)
    else forged.push(s.keyid)
  }
  return { valid: [...valid], forged, outsiders }
}

/**
 * Counts valid signatures by *distinct* keys of `role`; throws unless the threshold is met.
 * Invalid signatures and keys outside the role are ignored for counting but named in the error.
 */
export function verifyThreshold (signed: unknown, signatures: Signature[], role: Role, keys: Record<string, string>, what: string): string[] {
  const { valid, forged, outsiders } = tallySignatures(signed, signatures, role, keys)
  if (valid.length >= role.threshold) return valid
  const short = (k: string): string => k.slice(0, 12)
  if (forged.length > 0) {
    throw new TrustError('SIGNATURE_INVALID', `${what}: signature by key ${forged.map(short).join(', ')} does not verify (content changed after signing, or forged)`)
  }
  if (signatures.length === 0) throw new TrustError('SIGNATURE_MISSING', `${what} has no signatures; needs ${role.threshold}`)
  const extra = outsiders.length > 0 ? `; ignored ${outsiders.length} signature(s) by keys not in the role (${outsiders.map(short).join(', ')})` : ''
  throw new TrustError('THRESHOLD_NOT_MET', `${what} has ${valid.length} valid signature(s) by distinct trusted keys; needs ${role.threshold}${extra}`)
}

/** A first root (installed by hand) must at least be signed by a threshold of its own root keys. */
export function verifySelfSignedRoot (candidate: SignedDocument<unknown>, now: Date): RootDocument {
  const doc = checkRootShape(candidate)
  verifyThreshold(doc.signed, doc.signatures, doc.signed.roles.root, doc.signed.keys, `root v${doc.signed.version}`)
  assertNotExpired(doc.signed, now, `root v${doc.signed.version}`)
  return doc
}

/** Root N+1 is valid only if signed by a threshold of root N's root keys AND of its own (TUF rotation). */
export function verifyRootSuccessor (trusted: RootSigned, candidate: SignedDocument<unknown>, now: Date): RootDocument {
  const doc = checkRootShape(candidate, 'new root')
  const next = doc.signed
  if (next.name !== trusted.name) throw new TrustError('NAME_MISMATCH', `new root is for catalogue "${next.name}", trusted root is "${trusted.name}"`)
  if (next.version < trusted.version) throw new TrustError('ROLLBACK', `new root version ${next.version} is older than the trusted version ${trusted.version}`)
  // As for an index: re-publishing the trusted root is a no-op mistake, not an attack; another
  // root under the same version is a conflicting document.
  if (next.version === trusted.version) {
    if (contentDigest(next) !== contentDigest(trusted)) {
      throw new TrustError('ROLLBACK', `new root version ${next.version} has different content from the trusted root of the same version`)
    }
    throw new TrustError('VERSION_NOT_RAISED', `root version ${next.version} is already the trusted root; a new root must raise the version`)
  }
  if (next.version !== trusted.version + 1) throw new TrustError('VERSION_GAP', `new root version ${next.version} is not the direct successor of ${trusted.version}`)
  verifyThreshold(next, doc.signatures, trusted.roles.root, trusted.keys, `root v${next.version} (by the keys of root v${trusted.version})`)
  verifyThreshold(next, doc.signatures, next.roles.root, next.keys, `root v${next.version} (by its own root keys)`)
  assertNotExpired(next, now, `root v${next.version}`)
  return doc
}

/** Walks successive roots forward; intermediate roots may have expired, the final one may not. */
export function walkRootChain (trusted: RootDocument, successors: Array<SignedDocument<unknown>>, now: Date): RootDocument {
  let current = trusted
  for (const candidate of successors) {
    const doc = checkRootShape(candidate, 'new root')
    const next = doc.signed
    if (next.name !== current.signed.name) throw new TrustError('NAME_MISMATCH', `root v${next.version} is for "${next.name}", not "${current.signed.name}"`)
    if (next.version !== current.signed.version + 1) throw new TrustError('VERSION_GAP', `root v${next.version} does not follow v${current.signed.version}`)
    verifyThreshold(next, doc.signatures, current.signed.roles.root, current.signed.keys, `root v${next.version} (by the keys of root v${current.signed.version})`)
    verifyThreshold(next, doc.signatures, next.roles.root, next.keys, `root v${next.version} (by its own root keys)`)
    current = doc
  }
  assertNotExpired(current.signed, now, `root v${current.signed.version}`)
  return current
}

export interface AcceptIndexOptions { now: Date, last?: LastAccepted, minVersion?: number }

/**
 * Accepts an index under `root`: threshold of distinct index keys, not expired, not a rollback
 * (an older version, or the same version with other content). The same version with the same
 * content is accepted again (a poll that finds nothing new).
 */
export function acceptIndex (root: RootSigned, candidate: SignedDocument<unknown>, opts: AcceptIndexOptions): AcceptedIndex {
  assertNotExpired(root, opts.now, `trusted root v${root.version}`)
  const doc = checkIndexShape(candidate)
  const index = doc.signed
  if (index.name !== root.name) throw new TrustError('NAME_MISMATCH', `index is for catalogue "${index.name}", the trusted root is for "${root.name}"`)
  const signers = verifyThreshold(index, doc.signatures, root.roles.index, root.keys, `index v${index.version}`)
  assertNotExpired(index, opts.now, `index v${index.version}`)
  const digest = contentDigest(index)
  if (opts.minVersion !== undefined && index.version < opts.minVersion) {
    throw new TrustError('ROLLBACK', `index version ${index.version} is below the minimum ${opts.minVersion}`)
  }
  const last = opts.last
  if (last !== undefined) {
    if (index.version < last.version) throw new TrustError('ROLLBACK', `index version ${index.version} is older than the accepted version ${last.version}`)
    if (index.version === last.version && digest !== last.digest) {
      throw new TrustError('ROLLBACK', `index version ${index.version} has different content from the accepted index of the same version`)
    }
  }
  return { doc, digest, signers }
}

/** Whether an image entry is past its own `expires` (the index itself may still be valid). */
export function imageExpired (img: { expires?: string }, now: Date): boolean {
  return img.expires !== undefined && expiredAt(img.expires, now)
}
