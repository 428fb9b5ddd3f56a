import { readFile } from 'node:fs/promises'
import { MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml } from '../lib/document.js'
import { ConfigError, type ImgdistError, toImgdistError } from '../lib/errors.js'
import type { IndexDocument, RootDocument, SignedDocument } from '../lib/schema.js'
import { acceptIndex, catalogueExpires, checkRootShape, verifyThreshold } from '../lib/trust.js'
import type { TrustStore } from './trust-store.js'

/** What a subscription starts from: its root, and the index it last accepted if that still holds. */
export interface Restored {
  root: RootDocument
  /** the stored index, accepted again under `root` at start-up */
  accepted?: { index: IndexDocument, digest: string, signers: string[] }
  /** why the stored index is no longer in force (expired while the agent was down, say) */
  refused?: ImgdistError
  /** the version of the stored index, accepted or not */
  storedVersion?: number
  /** when the stored catalogue went out of force, if that is why it was refused (status keeps the date) */
  lapsedAt?: string
}

/**
 * Loads the pinned root (the file the config names) and the last accepted state from LevelDB.
 * The pinned file wins only if it is newer than the stored root, so a rotation the agent followed
 * survives a restart with the install-time file still in place. An unusable pinned root is a
 * config error: the agent cannot trust anything for this subscription.
 */
export async function restoreCatalogue (sub: { label: string, root: string }, trust: TrustStore, now: Date): Promise<Restored> {
  let pinned: RootDocument
  try {
    const doc = parseSignedYaml(await readFile(sub.root), MAX_ROOT_BYTES, `root ${sub.root}`)
    pinned = checkRootShape(doc, `root ${sub.root}`)
    verifyThreshold(pinned.signed, pinned.signatures, pinned.signed.roles.root, pinned.signed.keys, `root ${sub.root}`)
  } catch (err) {
    throw new ConfigError(`subscription ${sub.label}: pinned root ${sub.root} is unusable: ${(err as Error).message}`)
  }
  const stored = await trust.getRoot(pinned.signed.name)
  const root = stored !== undefined && stored.signed.version >= pinned.signed.version ? stored : pinned
  const idx = await trust.getIndex(root.signed.name)
  if (idx === undefined) return { root }
  let doc: SignedDocument<unknown> | undefined
  try {
    doc = parseSignedYaml(idx.text, MAX_INDEX_BYTES, 'stored index')
    const acc = acceptIndex(root.signed, doc, { now, last: { version: idx.version, digest: idx.digest } })
    return { root, accepted: { index: acc.doc, digest: acc.digest, signers: acc.signers }, storedVersion: acc.doc.signed.version }
  } catch (err) {
    const refused = toImgdistError(err)
    // it lapsed while the agent was down: still the last catalogue accepted, and status says since when
    const expires = (doc?.signed as { expires?: unknown } | undefined)?.expires
    const lapsedAt = refused.code === 'EXPIRED' && typeof expires === 'string' ? catalogueExpires(root.signed.expires, expires) : undefined
    return { root, refused, storedVersion: idx.version, ...(lapsedAt !== undefined ? { lapsedAt } : {}) }
  }
}
