import { addSignature } from '../../lib/document.js'
import { keyIdOf } from '../../lib/keys.js'
import { list, onePositional, parseCommandArgs } from '../args.js'
import { loadRootInput, saveDocument, shortKey } from '../documents.js'
import { loadSecretKey } from '../files.js'
import { note, out, type Io } from '../io.js'
import { UsageError } from '../../lib/errors.js'

export const signRootHelp = `NAME
    imgdist-sign sign-root - add a root key's signature to root.yaml

SYNOPSIS
    imgdist-sign sign-root --key KEY [--key KEY...] ROOT_FILE

DESCRIPTION
    Signs the canonical JSON (RFC 8785) of ROOT_FILE's "signed" part with each KEY and stores
    the signature in ROOT_FILE (replaced atomically). The content is never changed, so other
    signatures stay valid; signing twice with the same key is a no-op.

    A first root needs a threshold of its own root keys. A rotated root (made with
    "init-root --from") needs a threshold of the previous root's root keys as well, which are
    not listed in the new file: a key not in ROOT_FILE's root role is therefore accepted, with
    a note.

OPTIONS
    --key KEY       secret key file (NAME.key from keygen); repeatable (required)
    -h, --help      show this help

EXAMPLES
    imgdist-sign sign-root --key root.key root.yaml
    imgdist-sign sign-root --key old-root.key --key new-root.key root-v2.yaml

EXIT STATUS
    0  signed            2  usage error (missing file, not a secret key, not a root document)
`

export async function signRoot (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('sign-root', argv, { key: { type: 'string', multiple: true } })
  if (help) { out(io, signRootHelp.trimEnd()); return 0 }
  const path = onePositional('sign-root', positionals, 'ROOT_FILE')
  const keyPaths = list(values.key)
  if (keyPaths.length === 0) throw new UsageError('sign-root: --key is required (see imgdist-sign sign-root --help)')
  const keys = await Promise.all(keyPaths.map(loadSecretKey))
  let doc = await loadRootInput(path)
  const role = doc.signed.roles.root
  for (const k of keys) {
    const id = keyIdOf(k.publicKey)
    if (!role.keyids.includes(id)) {
      note(io, `note: key ${shortKey(id)} is not a root key of ${path} v${doc.signed.version}; this only counts if it is a root key of v${doc.signed.version - 1}`)
    }
    doc = addSignature(doc, k)
  }
  await saveDocument(path, doc)
  const own = doc.signatures.filter((s) => role.keyids.includes(s.keyid)).length
  out(io, `signed ${path} (root ${doc.signed.name} v${doc.signed.version}) with ${keys.map((k) => shortKey(keyIdOf(k.publicKey))).join(', ')}; ` +
    `${doc.signatures.length} signature(s), ${own} by its own root keys (threshold ${role.threshold})`)
  return 0
}
