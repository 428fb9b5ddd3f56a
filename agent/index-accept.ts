import type { Logger } from 'pino'
import { MAX_INDEX_BYTES, parseSignedYaml } from '../lib/document.js'
import type { RootDocument } from '../lib/schema.js'
import { acceptIndex, type AcceptedIndex } from '../lib/trust.js'
import type { TrustStore } from './trust-store.js'

/**
 * A fetched index.yaml → an index in force (DESIGN.md §3), or an ImgdistError and nothing
 * stored. Judged against the last accepted one (no rollback, no other bytes under its version),
 * and saved with its root when anything changed, so that a restart starts from it.
 */

export interface IndexAcceptDeps {
  name: string
  trust: TrustStore
  log: Logger
  now: () => Date
  /** the root rotations published since `trusted` (the poller's root walk) */
  walkRoots: (trusted: RootDocument) => Promise<RootDocument>
}

export interface AcceptedCatalogue { root: RootDocument, acc: AcceptedIndex }

export async function acceptFetchedIndex (deps: IndexAcceptDeps, url: string, body: Buffer, root: RootDocument, previousRoot: RootDocument | undefined): Promise<AcceptedCatalogue> {
  const doc = parseSignedYaml(body, MAX_INDEX_BYTES, `index from ${url}`)
  const stored = await deps.trust.getIndex(deps.name)
  const accept = (r: RootDocument): AcceptedIndex =>
    acceptIndex(r.signed, doc, { now: deps.now(), ...(stored !== undefined ? { last: { version: stored.version, digest: stored.digest } } : {}) })
  let acc: AcceptedIndex
  try {
    acc = accept(root)
  } catch (err) {
    // The roots were walked before a request the server may have held for 50 s: a rotation
    // published meanwhile (new index keys, then the first index they sign) is judged too, or
    // every watching site refused that index (THRESHOLD_NOT_MET) until its next poll.
    const newer = await deps.walkRoots(root)
    if (newer === root) throw err
    root = newer
    acc = accept(root)
  }
  if (stored === undefined || stored.digest !== acc.digest || root !== previousRoot) {
    await deps.trust.putAccepted(deps.name, root, {
      version: acc.doc.signed.version, digest: acc.digest, text: body.toString('utf8'), signers: acc.signers, acceptedAt: deps.now().toISOString()
    })
    deps.log.info({ catalogue: deps.name, indexVersion: acc.doc.signed.version, rootVersion: root.signed.version }, 'accepted catalogue')
  }
  return { root, acc }
}
