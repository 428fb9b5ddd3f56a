import canonicalize from 'canonicalize'
import { TrustError } from './errors.js'

/**
 * RFC 8785 (JCS) canonical JSON: the exact bytes that signatures cover. Two endorsers on
 * different machines must produce identical bytes for the same `signed` payload, whatever
 * key order or YAML formatting their files have.
 */
export function canonicalBytes (value: unknown): Uint8Array {
  let text: string | undefined
  try {
    text = canonicalize(value)
  } catch (err) {
    throw new TrustError('SCHEMA_INVALID', `document cannot be canonicalised: ${(err as Error).message}`, { cause: err })
  }
  if (text === undefined) throw new TrustError('SCHEMA_INVALID', 'document cannot be canonicalised (undefined value)')
  return new TextEncoder().encode(text)
}
