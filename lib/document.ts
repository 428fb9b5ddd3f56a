import { createHash } from 'node:crypto'
import { Lexer, parseDocument as parseYamlDocument, stringify, visit } from 'yaml'
import { canonicalBytes } from './canonical-json.js'
import { TrustError } from './errors.js'
import { decodePublicKey, keyIdOf, signBytes, type KeyPair } from './keys.js'
import { Envelope, ImageEntry, IndexSigned, Revocation, Role, RootSigned, Signature, type SignedDocument } from './schema.js'
import { schemaProblems } from './validate.js'

/** Byte limits checked before any parsing: a catalogue is metadata, never megabytes of it. */
export const MAX_ROOT_BYTES = 1024 * 1024
export const MAX_INDEX_BYTES = 8 * 1024 * 1024
/** A handful of aliases is harmless; an alias bomb multiplies them exponentially. */
export const MAX_YAML_ALIASES = 16

/*
 * The YAML library spends about a kilobyte and a few microseconds on every node, whatever its
 * size in bytes, and builds the whole tree before any signature can be checked: 3 MB of `[1,1,…]`
 * held the event loop for seconds and 8 MB of `[[[…]]]` exhausted the heap. A lexer pass, which
 * keeps no tree, refuses first what no catalogue within the schema's limits needs.
 */

/** The schema nests at most 5 collections (envelope, signed, images, an entry, its properties). */
export const MAX_YAML_DEPTH = 8

/** The longest string the schema allows (a property value) written with YAML's longest escapes. */
export const MAX_YAML_SCALAR_CHARS = 8 * 65536

// Tokens are scalars, indicators, punctuation and line breaks (blanks are free): a block-style
// `key: value` line is 4.
const SIGNATURE_TOKENS = 1 + 4 * Object.keys(Signature.properties).length
/** The list marker, one line per field, and 24 tokens more for a few properties or web seeds. */
const IMAGE_TOKENS = 1 + 4 * Object.keys(ImageEntry.properties).length + 24
const REVOCATION_TOKENS = 1 + 4 * Object.keys(Revocation.properties).length
const ROLE_TOKENS = 8 + 3 * (Role.properties.keyids.maxItems as number)
const TOP_TOKENS = 256 + (Envelope.properties.signatures.maxItems as number) * SIGNATURE_TOKENS

/** Enough for 10,000 images with all their fields and 10,000 revocations. */
export const MAX_INDEX_YAML_TOKENS = TOP_TOKENS +
  (IndexSigned.properties.images.maxItems as number) * IMAGE_TOKENS +
  (IndexSigned.properties.revoked.maxItems as number) * REVOCATION_TOKENS
/** Twice what a root with every key and role slot needs: roots are small and often hand-written, in any style. */
export const MAX_ROOT_YAML_TOKENS = 2 * (TOP_TOKENS + 4 * (RootSigned.properties.keys.maxProperties as number) + 2 * ROLE_TOKENS)

export type DocumentType = 'root' | 'index'

/**
 * Parses untrusted YAML into `{signed, signatures}` with every bound applied first: size, alias
 * count, no tags beyond YAML's core schema, no duplicate keys. The payload is not yet
 * schema-checked or trusted: see trust.ts.
 */
export function parseSignedYaml (input: Uint8Array | string, maxBytes: number, what = 'document'): SignedDocument<unknown> {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength
  if (size > maxBytes) throw new TrustError('TOO_LARGE', `${what} is ${size} bytes, over the limit of ${maxBytes}`)
  const text = typeof input === 'string' ? input : decodeUtf8(input, what)
  checkYamlBounds(text, maxBytes <= MAX_ROOT_BYTES ? MAX_ROOT_YAML_TOKENS : MAX_INDEX_YAML_TOKENS, what)
  let value: unknown
  try {
    const doc = parseYamlDocument(text, { schema: 'core', merge: false, uniqueKeys: true, prettyErrors: false, strict: true })
    const problem = doc.errors[0] ?? doc.warnings[0]
    if (problem !== undefined) throw new TrustError('YAML_INVALID', `${what} is not valid YAML: ${yamlProblemLine(problem.message)}`)
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
    throw new TrustError('YAML_INVALID', `${what} is not valid YAML: ${yamlProblemLine(msg)}`, { cause: err })
  }
  const problems = schemaProblems(Envelope, value)
  if (problems.length > 0) throw new TrustError('SCHEMA_INVALID', `${what} is not a signed document {signed, signatures}: ${problems.join('; ')}`)
  return value as SignedDocument<unknown>
}

/** yaml's message without its code frame: the first line, less the colon that led into the frame. */
export function yamlProblemLine (s: string): string { return (s.split('\n')[0] ?? s).replace(/:\s*$/, '') }

/**
 * Counts tokens and collection nesting with yaml's Lexer, which yields flat tokens and keeps no
 * tree, and stops at the first bound exceeded. Block nesting is followed by the column where
 * each block collection starts, as YAML's indentation rules define it.
 */
function checkYamlBounds (text: string, maxTokens: number, what: string): void {
  let tokens = 0
  let flow = 0
  let column = 0
  let scalarNext = false
  let itemColumn: number | undefined // where the content of the current block item began
  const blocks: Array<{ column: number, seq: boolean }> = []
  const checkDepth = (): void => {
    if (blocks.length + flow > MAX_YAML_DEPTH) {
      throw new TrustError('TOO_LARGE', `${what} nests YAML collections more than ${MAX_YAML_DEPTH} deep; a catalogue needs 5`)
    }
  }
  const openBlock = (col: number, seq: boolean): void => {
    while (blocks.length > 0 && (blocks[blocks.length - 1] as { column: number }).column > col) blocks.pop()
    const top = blocks[blocks.length - 1]
    if (top?.column === col) {
      if (top.seq === seq) return
      // A sequence may sit at its parent key's column; a key at that column ends the sequence.
      if (top.seq && !seq) {
        blocks.pop()
        if (blocks[blocks.length - 1]?.column === col) return
      }
    }
    blocks.push({ column: col, seq })
    checkDepth()
  }
  const count = (n: number): void => {
    tokens += n
    if (tokens > maxTokens) {
      throw new TrustError('TOO_LARGE', `${what} has more than ${maxTokens} YAML tokens and lines, more than a catalogue within the schema's limits needs`)
    }
  }
  // Every line break is counted below; counting them first refuses a flood of blank lines at memchr speed.
  count(lineBreaks(text))
  tokens = 0
  for (const token of new Lexer().lex(text)) {
    if (token === '\x1f') { scalarNext = true; continue } // the next token is a scalar's source, whatever it starts with
    if (token === '\x02') continue // start of a document
    if (!scalarNext) {
      // Every line costs the parser about as much as a node, blank or not.
      if (token === '' || token === '\n' || token === '\r\n') { count(1); column = 0; itemColumn = undefined; continue }
      if (token[0] === ' ' || token[0] === '\t') { column += token.length; continue }
    }
    if (token.length > MAX_YAML_SCALAR_CHARS) {
      throw new TrustError('TOO_LARGE', `${what} has a YAML token of ${token.length} characters, over the limit of ${MAX_YAML_SCALAR_CHARS}`)
    }
    const newline = token.lastIndexOf('\n')
    count(newline === -1 ? 1 : 1 + lineBreaks(token))
    if (flow === 0 && !scalarNext) {
      if (token === '-' || token === '?') { openBlock(column, token === '-'); itemColumn = undefined } else if (token === ':') { openBlock(itemColumn ?? column, false); itemColumn = undefined } else if (itemColumn === undefined && token[0] !== '#') itemColumn = column
    } else if (flow === 0 && itemColumn === undefined) itemColumn = column
    if (!scalarNext) {
      if (token === '[' || token === '{') { flow++; checkDepth() } else if ((token === ']' || token === '}') && flow > 0) flow--
    }
    scalarNext = false
    column = newline === -1 ? column + token.length : token.length - newline - 1
  }
}

function lineBreaks (s: string): number {
  let n = 0
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++
  return n
}

/** Signed bytes are never rewritten: a lenient decoder would turn invalid bytes into U+FFFD and sign those. */
function decodeUtf8 (bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (err) {
    throw new TrustError('YAML_INVALID', `${what} is not UTF-8`, { cause: err })
  }
}

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
