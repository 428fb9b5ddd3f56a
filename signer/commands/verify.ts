import { contentDigest, documentType, MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml } from '../../lib/document.js'
import { TrustError } from '../../lib/errors.js'
import { parseRfc3339 } from '../../lib/duration.js'
import type { Role, RootSigned } from '../../lib/schema.js'
import { acceptIndex, assertNotExpired, imageExpired, verifyRootSuccessor, verifySelfSignedRoot, verifyThreshold } from '../../lib/trust.js'
import { integer, onePositional, parseCommandArgs, required, str } from '../args.js'
import { loadRootInput, shortKey } from '../documents.js'
import { readBounded } from '../files.js'
import { note, out, type Io } from '../io.js'

export const verifyHelp = `NAME
    imgdist-sign verify - check an index or a new root against a trusted root

SYNOPSIS
    imgdist-sign verify --root ROOT [--min-version N] [--now RFC3339] DOC

DESCRIPTION
    Checks DOC exactly as an agent would, and prints one line saying why it is valid (exit 0)
    or why not (exit 1, with the reason's code, e.g. SIGNATURE_INVALID, THRESHOLD_NOT_MET,
    EXPIRED, ROLLBACK, SCHEMA_INVALID, TOO_LARGE).

    DOC is recognised by its signed.type:
      index  valid if signed by a threshold of distinct index keys of ROOT, for ROOT's
             catalogue, not expired, at least version N, within the size and schema bounds
             (unique ids, safe names, hex hashes).
      root   valid if it is the direct successor of ROOT (version ROOT+1, same catalogue),
             signed by a threshold of ROOT's root keys AND a threshold of its own root keys,
             and not expired. DOC equal to ROOT checks that ROOT is properly self-signed.

    A ROOT that has itself expired makes every check fail (EXPIRED). ROOT is trusted as given;
    a ROOT that is not self-signed only earns a warning on stderr.

OPTIONS
    --root ROOT          the trusted root.yaml (required)
    --min-version N      refuse an index below version N (rollback check; default: none)
    --now RFC3339        check expiry at this time instead of the current time,
                         e.g. 2026-01-31T12:00:00Z
    -h, --help           show this help

EXAMPLES
    imgdist-sign verify --root root.yaml index.yaml
    imgdist-sign verify --root root.yaml --min-version 7 index.yaml
    imgdist-sign verify --root root-v1.yaml root-v2.yaml
    imgdist-sign verify --root root.yaml --now 2030-01-01T00:00:00Z index.yaml

EXIT STATUS
    0  DOC is valid      1  DOC is refused (reason on stderr)
    2  usage error (missing file, unreadable or invalid ROOT, bad --now)
`

export async function verify (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('verify', argv, {
    root: { type: 'string' }, 'min-version': { type: 'string' }, now: { type: 'string' }
  })
  if (help) { out(io, verifyHelp.trimEnd()); return 0 }
  const docPath = onePositional('verify', positionals, 'DOC')
  const rootPath = required('verify', values.root, '--root')
  const minVersion = integer(str(values['min-version']), '--min-version', 1)
  const nowArg = str(values.now)
  const now = nowArg !== undefined ? parseRfc3339(nowArg, '--now') : io.now()

  const root = await loadRootInput(rootPath)
  try { verifySelfSignedRoot(root, new Date(Date.parse(root.signed.expires) - 1)) } catch (err) {
    note(io, `warning: trusted root ${rootPath} is not properly self-signed: ${(err as Error).message}`)
  }
  // DOC is the subject of the check: from here on any refusal is exit 1.
  const bytes = await readBounded(docPath, MAX_INDEX_BYTES, 1)
  const doc = parseSignedYaml(bytes, MAX_INDEX_BYTES, docPath)
  const trusted = root.signed
  const type = documentType(doc)
  if (type === 'root' && bytes.byteLength > MAX_ROOT_BYTES) {
    throw new TrustError('TOO_LARGE', `${docPath} is a root of ${bytes.byteLength} bytes, over the limit of ${MAX_ROOT_BYTES}`)
  }
  if (type === 'index') {
    const { doc: index, signers } = acceptIndex(trusted, doc, { now, minVersion })
    const s = index.signed
    const expiredImages = s.images.filter((i) => imageExpired(i, now)).length
    out(io, `OK index ${s.name} v${s.version}: ${s.images.length} image(s)${expiredImages > 0 ? ` (${expiredImages} expired)` : ''}, ${s.revoked.length} revoked, ` +
      `${signedBy(signers, trusted.roles.index, 'index')}, expires ${s.expires}`)
    return 0
  }
  assertNotExpired(trusted, now, `trusted root v${trusted.version}`)
  const isSelf = (doc.signed as { version?: unknown }).version === trusted.version && contentDigest(doc.signed) === contentDigest(trusted)
  if (isSelf) {
    const self = verifySelfSignedRoot(doc, now)
    const own = verifyThreshold(self.signed, self.signatures, self.signed.roles.root, self.signed.keys, 'root')
    out(io, `OK root ${self.signed.name} v${self.signed.version}: self-signed, ${signedBy(own, self.signed.roles.root, 'root')}, expires ${self.signed.expires}`)
    return 0
  }
  const next = verifyRootSuccessor(trusted, doc, now).signed
  const byOld = verifyThreshold(next, doc.signatures, trusted.roles.root, trusted.keys, 'root')
  const byNew = verifyThreshold(next, doc.signatures, next.roles.root, next.keys, 'root')
  out(io, `OK root ${next.name} v${next.version}: successor of v${trusted.version}, ${signedBy(byOld, trusted.roles.root, `v${trusted.version} root`)} ` +
    `and ${signedBy(byNew, next.roles.root, `v${next.version} root`, '')}, ${keyChange(trusted, next)}, expires ${next.expires}`)
  return 0
}

function signedBy (signers: string[], role: Role, what: string, prefix = 'signed by '): string {
  return `${prefix}${signers.length} of ${role.keyids.length} ${what} keys, threshold ${role.threshold} (${signers.map(shortKey).join(', ')})`
}

function keyChange (old: RootSigned, next: RootSigned): string {
  const diff = (role: 'root' | 'index'): string => {
    const a = new Set(old.roles[role].keyids)
    const b = new Set(next.roles[role].keyids)
    const added = [...b].filter((k) => !a.has(k)).length
    const removed = [...a].filter((k) => !b.has(k)).length
    return `${role} keys +${added} -${removed}`
  }
  return `${diff('root')}, ${diff('index')}`
}
