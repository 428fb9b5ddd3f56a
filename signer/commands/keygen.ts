import { unlink } from 'node:fs/promises'
import { UsageError } from '../../lib/errors.js'
import { encodePublicKey, encodeSecretKey, generateKeyPair, keyIdOf } from '../../lib/keys.js'
import { noPositionals, parseCommandArgs, required } from '../args.js'
import { SignerError } from '../errors.js'
import { exists, writeExclusive } from '../files.js'
import { note, out, type Io } from '../io.js'

export const keygenHelp = `NAME
    imgdist-sign keygen - make an ed25519 signing key pair

SYNOPSIS
    imgdist-sign keygen --out NAME

DESCRIPTION
    Writes the secret key to NAME.key (mode 0600) and the public key to NAME.pub, and prints
    the key id (hex sha256 of the raw public key) on stdout. NAME.pub holds one line
    "ed25519:<base64>", the form init-root accepts for --root-key and --index-key. An existing
    NAME.key or NAME.pub is never overwritten.

    Keep NAME.key offline and private: whoever holds a threshold of index keys can publish any
    image to every site that trusts the catalogue.

OPTIONS
    --out NAME      path prefix of the two files (required); a trailing ".key" or ".pub" is
                    ignored, so --out alice and --out alice.key both write alice.key/alice.pub
    -h, --help      show this help

EXAMPLES
    imgdist-sign keygen --out keys/alice
    KEYID=$(imgdist-sign keygen --out keys/root-2025)

EXIT STATUS
    0  keys written      2  usage error, or NAME.key / NAME.pub already exists
`

export async function keygen (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('keygen', argv, { out: { type: 'string' } })
  if (help) { out(io, keygenHelp.trimEnd()); return 0 }
  noPositionals('keygen', positionals)
  const prefix = required('keygen', values.out, '--out').replace(/\.(key|pub)$/, '')
  if (prefix.endsWith('/')) throw new UsageError(`keygen: --out must name a file prefix, not a directory: "${prefix}"`)
  const secretPath = `${prefix}.key`
  const publicPath = `${prefix}.pub`
  // Check both first so a refusal never leaves a half-made pair behind.
  for (const p of [secretPath, publicPath]) if (await exists(p)) throw new SignerError('IO_ERROR', `${p} already exists; refusing to overwrite a key`, 2)
  const kp = generateKeyPair()
  await writeExclusive(secretPath, encodeSecretKey(kp.secretKey) + '\n', 0o600)
  try {
    await writeExclusive(publicPath, encodePublicKey(kp.publicKey) + '\n', 0o644)
  } catch (err) {
    await unlink(secretPath).catch(() => {})
    throw err
  }
  out(io, keyIdOf(kp.publicKey))
  note(io, `wrote ${secretPath} (secret, mode 0600) and ${publicPath}`)
  return 0
}
