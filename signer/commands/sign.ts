import { addSignature } from '../../lib/document.js'
import { formatDuration, rfc3339 } from '../../lib/duration.js'
import { UsageError } from '../../lib/errors.js'
import { keyIdOf } from '../../lib/keys.js'
import type { IndexDocument, RootDocument } from '../../lib/schema.js'
import { tallySignatures } from '../../lib/trust.js'
import { duration, list, noPositionals, parseCommandArgs, required, str } from '../args.js'
import { loadIndexInput, loadRootInput, saveDocument, shortKey } from '../documents.js'
import { SignerError } from '../errors.js'
import { loadSecretKey } from '../files.js'
import { note, out, type Io } from '../io.js'
import { refusePartialRenewal } from '../renew-guard.js'
import { renewIndex, type Renewal } from '../renew.js'
import { addDuration } from '../time.js'
import { signHelp } from './sign-help.js'

export { signHelp }

/** How endorsers give a signed catalogue a later expiry (README, "Endorsing images"). */
const RENEW = 'a later expiry needs a new version: the first signer runs imgdist-sign sign --renew [--expires DURATION], then the others sign that'

export async function sign (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('sign', argv, {
    index: { type: 'string' }, key: { type: 'string', multiple: true }, expires: { type: 'string' }, root: { type: 'string' }, renew: { type: 'boolean' },
    force: { type: 'boolean' }
  })
  if (help) { out(io, signHelp.trimEnd()); return 0 }
  noPositionals('sign', positionals)
  const path = required('sign', values.index, '--index')
  const keyPaths = list(values.key)
  if (keyPaths.length === 0) throw new UsageError('sign: --key is required (see imgdist-sign sign --help)')
  const lifetime = duration(str(values.expires), '--expires')
  if (values.force === true && values.renew !== true) throw new UsageError('sign: --force only applies to --renew (see imgdist-sign sign --help)')
  const keys = await Promise.all(keyPaths.map(loadSecretKey))
  const rootPath = str(values.root)
  const root = rootPath !== undefined ? (await loadRootInput(rootPath)).signed : undefined
  const previous = await loadIndexInput(path)
  let doc = previous
  const now = io.now()

  if (root !== undefined) {
    if (root.name !== doc.signed.name) throw new UsageError(`sign: ${path} is the index of "${doc.signed.name}", ${rootPath as string} is the root of "${root.name}"`)
    for (const k of keys) {
      const id = keyIdOf(k.publicKey)
      if (!root.roles.index.keyids.includes(id)) throw new SignerError('KEY_INVALID', `sign: key ${shortKey(id)} is not an index key of ${rootPath as string} v${root.version}`, 2)
    }
  }
  if (values.renew === true && values.force !== true) refusePartialRenewal(previous, path, now, root)
  const renewal = values.renew === true ? renewIndex(previous, path, now, lifetime) : undefined
  if (renewal !== undefined) {
    doc = renewal.next
  } else if (lifetime !== undefined) {
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
  if (renewal !== undefined) out(io, renewedLine(path, previous, renewal))
  const signers = doc.signatures.map((s) => shortKey(s.keyid))
  const status = root !== undefined ? thresholdStatus(doc, root) : `${doc.signatures.length} signature(s)`
  out(io, `signed ${path} (index ${doc.signed.name} v${doc.signed.version}, expires ${doc.signed.expires}) with ${keys.map((k) => shortKey(keyIdOf(k.publicKey))).join(', ')}; ` +
    `now ${status}: ${signers.join(', ')}`)
  return 0
}

/**
 * With the root in view, what the agents will count: signatures that verify, by distinct index
 * keys (lib/trust.ts, the agents' own tally). A stale signature kept from before an edit, or one
 * by a key the root no longer lists, is named apart rather than counted towards the threshold.
 */
function thresholdStatus (doc: IndexDocument, root: RootDocument['signed']): string {
  const { threshold } = root.roles.index
  const { valid, forged, outsiders } = tallySignatures(doc.signed, doc.signatures, root.roles.index, root.keys)
  const apart = [
    forged.length > 0 ? `${forged.length} failing verification` : '',
    outsiders.length > 0 ? `${outsiders.length} not by an index key` : ''
  ].filter((x) => x !== '').join(', ')
  const verdict = valid.length >= threshold ? 'threshold met' : `${threshold - valid.length} more needed`
  return `${valid.length} of threshold ${threshold} valid index signature(s)${apart !== '' ? ` (not counted: ${apart})` : ''}, ${verdict}`
}

function renewedLine (path: string, previous: IndexDocument, r: Renewal): string {
  const from = previous.signed.version
  const to = r.next.signed.version
  const period = r.keptPeriod ? `, the validity period of v${from}` : ''
  const dropped = previous.signatures.length > 0
    ? `dropped the ${previous.signatures.length} signature(s) of v${from}: co-signers must sign v${to} again (sign without --renew)`
    : `v${from} had no signatures`
  return `renewed ${path}: index ${r.next.signed.name} v${from} -> v${to}, expires ${r.next.signed.expires} (now + ${formatDuration(r.lifetime)}${period}); ${dropped}`
}
