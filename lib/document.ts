import { createHash } from 'node:crypto'
import { parseDocument as parseYamlDocument, stringify, visit } from 'yaml'
import { canonicalBytes } from './canonical-json.js'
import { TrustError } from './errors.js'
import { decodePublicKey, keyIdOf, signBytes, type KeyPair } from './keys.js'
import { Envelope, type Signature, type SignedDocument } from './schema.js'
import { schemaProblems } from './validate.js'

/** Byte limits checked before any parsing: a catalogue is metadata, never megabytes of it. */
export const MAX_ROOT_BYTES = 1024 * 1024
export const MAX_INDEX_BYTES = 8 * 1024 * 1024
/** A handful of aliases is harmless; an alias bomb multiplies them exponentially. */
export const MAX_YAML_ALIASES = 16

export type DocumentType = 'root' | 'index'

/**
 * Parses untrusted YAML into `{signed, signatures}` with every bound applied first: size, alias
 * count, no tags beyond YAML's core schema, no duplicate keys. The payload is not yet
 * schema-checked or trusted: see trust.ts.
 */
export function parseSignedYaml (input: Uint8Array | string, maxBytes: number, what = 'document'): SignedDocument<unknown> {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength
  if (size > maxBytes) throw new TrustError('TOO_LARGE', `${what} is ${size} bytes, over the limit of ${maxBytes}`)
  const text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: false }).decode(input)
  let value: unknown
  try {
    const doc = parseYamlDocument(text, { schema: 'core', merge: false, uniqueKeys: true, prettyErrors: false, strict: true })
    const problem = doc.errors[0] ?? doc.warnings[0]
    if (problem !== undefined) throw new TrustError('YAML_INVALID', `${what} is not valid YAML: ${firstLine(problem.message)}`)
    // Explicit tags (!!binary, !!set, custom ones) have no place in a catalogue: refuse them all.
    visit(doc, {
      Node (_key, node) {
        const tag = (node as { tag?: string }).tag
        if (tag !== undefined) throw new TrustError('YAML_INVALID', `${what} uses the YAML tag ${tag}; tags are not allowed`)
      }
    })
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES })
  } catch (err) {
    if (err instanceof TrustError) throw err
    const msg = (err as Error).message
    if (/alias/i.test(msg)) throw new TrustError('ALIAS_LIMIT', `${what} uses too many YAML aliases (limit ${MAX_YAML_ALIASES})`, { cause: err })
    throw new TrustError('YAML_INVALID', `${what} is not valid YAML: ${firstLine(msg)}`, { cause: err })
  }
  const problems = schemaProblems(Envelope, value)
  if (problems.length > 0) throw new TrustError('SCHEMA_INVALID', `${what} is not a signed document {signed, signatures}: ${problems.join('; ')}`)
  return value as SignedDocument<unknown>
}

function firstLine (s: string): string { return s.split('\n')[0] ?? s }

/** Reads `signed.type` without trusting anything else, to route a document to its checker. */
export function documentType (doc: SignedDocument<unknown>): DocumentType {
  const t = (doc.signed as { type?: unknown } | null)?.type
  if (t === 'root' || t === 'index') return t
  throw new TrustError('TYPE_UNKNOWN', `signed.type is ${JSON.stringify(t)}; expected "root" or "index"`)
}

/** sha256 of the canonical `signed` payload: "same content" for rollback and co-signing. */
export function contentDigest (signed: unknown): string {
  return createHash('sha256').update(canonicalBytes(signed)).digest('hex')
}

/**
 * Adds this key's signature. ed25519 is deterministic, so re-signing the same content with the
 * same key is a no-op, and another endorser's signatures are left untouched (co-signing).
 */
export function addSignature<T> (doc: SignedDocument<T>, key: KeyPair): SignedDocument<T> {
  const keyid = keyIdOf(key.publicKey)
  const sig: Signature = { keyid, sig: signBytes(canonicalBytes(doc.signed), key.secretKey) }
  return { signed: doc.signed, signatures: [...doc.signatures.filter((s) => s.keyid !== keyid), sig] }
}

export function serializeDocument (doc: SignedDocument<unknown>): string {
  return stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false })
}

/** `keys` map entry for a public key, as it appears in root.yaml. */
export function keyEntry (publicKeyText: string): [string, string] {
  return [keyIdOf(decodePublicKey(publicKeyText)), publicKeyText.trim()]
}
