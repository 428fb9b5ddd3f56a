import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto'
import nacl from 'tweetnacl'
import { ImgdistError } from './errors.js'

/**
 * ed25519 keys. A public key is written `ed25519:<base64 of 32 bytes>` (DESIGN.md §3); its key
 * id is the hex sha256 of the raw 32 bytes. A secret key file holds `ed25519-secret:<base64 of
 * the 64-byte tweetnacl secret key>` so a public key can never be mistaken for a secret one.
 */

export interface KeyPair { publicKey: Uint8Array, secretKey: Uint8Array }

const PUB_PREFIX = 'ed25519:'
const SECRET_PREFIX = 'ed25519-secret:'

export function generateKeyPair (): KeyPair {
  const kp = nacl.sign.keyPair()
  return { publicKey: kp.publicKey, secretKey: kp.secretKey }
}

export function keyIdOf (publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex')
}

export function encodePublicKey (publicKey: Uint8Array): string {
  return PUB_PREFIX + Buffer.from(publicKey).toString('base64')
}

export function encodeSecretKey (secretKey: Uint8Array): string {
  return SECRET_PREFIX + Buffer.from(secretKey).toString('base64')
}

function decodeBase64Exact (b64: string, length: number, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new ImgdistError('KEY_INVALID', `${what} is not valid base64`)
  const bytes = Buffer.from(b64, 'base64')
  if (bytes.length !== length) throw new ImgdistError('KEY_INVALID', `${what} must be ${length} bytes, got ${bytes.length}`)
  return new Uint8Array(bytes)
}

export function decodePublicKey (text: string): Uint8Array {
  const t = text.trim()
  if (t.startsWith(SECRET_PREFIX)) throw new ImgdistError('KEY_INVALID', 'this is a secret key, expected a public key (ed25519:...)')
  if (!t.startsWith(PUB_PREFIX)) throw new ImgdistError('KEY_INVALID', 'public key must look like ed25519:<base64 of 32 bytes>')
  return decodeBase64Exact(t.slice(PUB_PREFIX.length), nacl.sign.publicKeyLength, 'public key')
}

export function decodeSecretKey (text: string): KeyPair {
  const t = text.trim()
  if (t.startsWith(PUB_PREFIX)) throw new ImgdistError('KEY_INVALID', 'this is a public key, expected a secret key file (NAME.key)')
  if (!t.startsWith(SECRET_PREFIX)) throw new ImgdistError('KEY_INVALID', 'secret key must look like ed25519-secret:<base64 of 64 bytes>')
  const secretKey = decodeBase64Exact(t.slice(SECRET_PREFIX.length), nacl.sign.secretKeyLength, 'secret key')
  const publicKey = nacl.sign.keyPair.fromSecretKey(secretKey).publicKey
  return { publicKey, secretKey }
}

export function signBytes (message: Uint8Array, secretKey: Uint8Array): string {
  return Buffer.from(nacl.sign.detached(message, secretKey)).toString('base64')
}

/** False for any malformed input: a signature that cannot even be decoded is simply not valid. */
export function verifyBytes (message: Uint8Array, sigBase64: string, publicKey: Uint8Array): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sigBase64)) return false
  const sig = Buffer.from(sigBase64, 'base64')
  if (sig.length !== nacl.sign.signatureLength || publicKey.length !== nacl.sign.publicKeyLength) return false
  // OpenSSL's ed25519 rather than tweetnacl's: the same RFC 8032 check (and stricter: it refuses
  // a non-canonical S), about 200 times faster. tweetnacl's 10–25 ms per signature was a visible
  // part of every agent's start-up, which verifies the root and the index before any download.
  try {
    return cryptoVerify(null, message, createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }), sig)
  } catch { return false }
}

/** DER SubjectPublicKeyInfo header of an ed25519 key (RFC 8410), before the raw 32 bytes */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
