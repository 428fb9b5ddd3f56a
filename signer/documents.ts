import { serializeDocument } from '../lib/document.js'
import type { IndexDocument, RootDocument } from '../lib/schema.js'
import { checkIndexShape, checkRootShape } from '../lib/trust.js'
import { asInputError } from './errors.js'
import { readSignedDocument, writeAtomic } from './files.js'

/**
 * The root and index files a command edits or trusts. They are inputs, not the subject of a
 * verification, so anything wrong with them is a usage error (exit 2) that still carries the
 * lib's code (YAML_INVALID, SCHEMA_INVALID, ...).
 */

export async function loadRootInput (path: string): Promise<RootDocument> {
  try {
    return checkRootShape(await readSignedDocument(path, 'root'), path)
  } catch (err) { throw asInputError(err) }
}

export async function loadIndexInput (path: string): Promise<IndexDocument> {
  try {
    return checkIndexShape(await readSignedDocument(path, 'index'), path)
  } catch (err) { throw asInputError(err) }
}

export async function saveDocument (path: string, doc: RootDocument | IndexDocument): Promise<void> {
  await writeAtomic(path, serializeDocument(doc))
}

export function shortKey (keyid: string): string { return keyid.slice(0, 12) }
