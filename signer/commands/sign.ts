import { addSignature } from '../../lib/document.js'
import { rfc3339 } from '../../lib/duration.js'
import { UsageError } from '../../lib/errors.js'
import { keyIdOf } from '../../lib/keys.js'
import { duration, list, noPositionals, parseCommandArgs, required, str } from '../args.js'
import { loadIndexInput, loadRootInput, saveDocument, shortKey } from '../documents.js'
import { SignerError } from '../errors.js'
import { loadSecretKey } from '../files.js'
import { note, out, type Io } from '../io.js'
import { addDuration } from '../time.js'

export const signHelp = `NAME
    imgdist-sign sign - add an index key's signature to index.yaml

SYNOPSIS
    imgdist-sign sign --index index.yaml --key KEY [--key KEY...] [--expires DURATION]
                      [--root root.yaml]

DESCRIPTION
    Signs the canonical JSON (RFC 8785) of the index's "signed" part with each KEY and stores
    the signatures in index.yaml (replaced atomically). Co-signing: each endorser runs the same
    command on the same file in turn; signatures already there are kept and stay valid, because
    signing never changes the content.

    --expires changes the content (the index's "expires"), so it is only allowed while the
    index has no signatures yet, i.e. for the first signer after add or revoke. A later signer
    passing --expires gets a usage error instead of silently invalidating the others'
    signatures.

OPTIONS
    --index FILE         the index to sign (required)
    --key KEY            secret key file (NAME.key from keygen); repeatable (required)
    --expires DURATION   first signer only: set the index expiry to now + DURATION
                         (90s, 15m, 12h, 14d, 2w; default: leave "expires" as it is)
    --root FILE          check that each KEY is an index key of this root and report how
                         many of the threshold are now present (default: no check)
    -h, --help           show this help

EXAMPLES
    imgdist-sign sign --index index.yaml --key alice.key --expires 14d
    imgdist-sign sign --index index.yaml --key bob.key --root root.yaml

EXIT STATUS
    0  signed            2  usage error (not a secret key, --expires on a signed index,
                            a key outside the root's index role, unreadable index)
`

/** How endorsers give a signed catalogue a later expiry (README, "Endorsing images"). */
const RENEW = 'a later expiry needs a new version: imgdist-sign add (any listed image again) or revoke, with --index-expires DURATION, then sign that'

export async function sign (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('sign', argv, {
    index: { type: 'string' }, key: { type: 'string', multiple: true }, expires: { type: 'string' }, root: { type: 'string' }
  })
  if (help) { out(io, signHelp.trimEnd()); return 0 }
  noPositionals('sign', positionals)
  const path = required('sign', values.index, '--index')
  const keyPaths = list(values.key)
  if (keyPaths.length === 0) throw new UsageError('sign: --key is required (see imgdist-sign sign --help)')
  const lifetime = duration(str(values.expires), '--expires')
  const keys = await Promise.all(keyPaths.map(loadSecretKey))
  const rootPath = str(values.root)
  const root = rootPath !== undefined ? (await loadRootInput(rootPath)).signed : undefined
  let doc = await loadIndexInput(path)
  const now = io.now()

  if (root !== undefined) {
    if (root.name !== doc.signed.name) throw new UsageError(`sign: ${path} is the index of "${doc.signed.name}", ${rootPath as string} is the root of "${root.name}"`)
    for (const k of keys) {
      const id = keyIdOf(k.publicKey)
      if (!root.roles.index.keyids.includes(id)) throw new SignerError('KEY_INVALID', `sign: key ${shortKey(id)} is not an index key of ${rootPath as string} v${root.version}`, 2)
    }
  }
  if (lifetime !== undefined) {
    const expires = rfc3339(addDuration(now, lifetime))
    if (doc.signatures.length > 0 && expires !== doc.signed.expires) {
      throw new UsageError(`sign: ${path} v${doc.signed.version} already has ${doc.signatures.length} signature(s) for expires ${doc.signed.expires}; ` +
        `--expires would change the signed content and invalidate them. Sign without --expires to co-sign; ${RENEW}`)
    }
    if (expires !== doc.signed.expires) doc = { signed: { ...doc.signed, expires }, signatures: [] }
  }
  if (Date.parse(doc.signed.expires) <= now.getTime()) {
    // once signed, its expiry is fixed: "the first signer can pass --expires" sent co-signers of an expired index to a refusal
    const remedy = doc.signatures.length === 0 ? 'the first signer can pass --expires' : RENEW
    note(io, `warning: ${path} v${doc.signed.version} expired at ${doc.signed.expires}; agents will refuse it (${remedy})`)
  }
  for (const k of keys) doc = addSignature(doc, k)
  await saveDocument(path, doc)
  const signers = doc.signatures.map((s) => shortKey(s.keyid))
  const status = root !== undefined
    ? `${doc.signatures.filter((s) => root.roles.index.keyids.includes(s.keyid)).length} of threshold ${root.roles.index.threshold} index signature(s)`
    : `${doc.signatures.length} signature(s)`
  out(io, `signed ${path} (index ${doc.signed.name} v${doc.signed.version}, expires ${doc.signed.expires}) with ${keys.map((k) => shortKey(keyIdOf(k.publicKey))).join(', ')}; ` +
    `now ${status}: ${signers.join(', ')}`)
  return 0
}
