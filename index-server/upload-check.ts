import { MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml } from '../lib/document.js'
import type { IndexDocument, RootDocument, RootSigned } from '../lib/schema.js'
import { acceptIndex, verifyRootSuccessor, type LastAccepted } from '../lib/trust.js'

/**
 * A document uploaded by PUT and the state it is checked against, as the catalogue stood when
 * the publish got its turn. Plain data: it crosses to the worker thread (upload-checker.ts).
 */
export interface UploadCheck {
  kind: 'index' | 'root'
  bytes: Uint8Array
  /** the trusted root, latest of the chain */
  root: RootSigned
  /** the index in force, which a new one must not roll back */
  last?: LastAccepted
  /** milliseconds since the epoch (a Date would not survive the crossing as one) */
  now: number
}

export type CheckedUpload =
  | { kind: 'index', doc: IndexDocument, digest: string }
  | { kind: 'root', doc: RootDocument }

/** Parse and verify, all of the CPU a publish costs; throws the TrustError of the first rule broken. */
export function checkUpload (c: UploadCheck): CheckedUpload {
  const now = new Date(c.now)
  if (c.kind === 'index') {
    const accepted = acceptIndex(c.root, parseSignedYaml(c.bytes, MAX_INDEX_BYTES, 'index'), { now, last: c.last })
    return { kind: 'index', doc: accepted.doc, digest: accepted.digest }
  }
  return { kind: 'root', doc: verifyRootSuccessor(c.root, parseSignedYaml(c.bytes, MAX_ROOT_BYTES, 'root'), now) }
}
