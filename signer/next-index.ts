import { editIndex } from '../lib/catalogue-edit.js'
import { rfc3339 } from '../lib/duration.js'
import type { IndexDocument, IndexSigned } from '../lib/schema.js'
import { checkIndexShape } from '../lib/trust.js'
import { asInputError } from './errors.js'
import { addDuration } from './time.js'

/**
 * The next version of an index, as add, revoke and sign --renew make it: `edit` applied, the
 * version raised by one, issued now and the signatures dropped (lib/catalogue-edit), and with a
 * lifetime, expires = now + lifetime. It is checked as agents will check it, so a bad edit is a
 * usage error (prefixed with `what`) before anything is hashed or written.
 */
export function nextIndexVersion (index: IndexDocument, now: Date, edit: (s: IndexSigned) => IndexSigned, lifetime: number | undefined, what: string): IndexDocument {
  const next = editIndex(index, now, edit)
  if (lifetime !== undefined) next.signed.expires = rfc3339(addDuration(now, lifetime))
  try { return checkIndexShape(next, 'the edited index') } catch (err) { throw asInputError(err, what) }
}

/** What an edit cost the endorsers: "; dropped 2 signature(s) of v5", or nothing if there were none. */
export function droppedSignatures (index: IndexDocument): string {
  return index.signatures.length > 0 ? `; dropped ${index.signatures.length} signature(s) of v${index.signed.version}` : ''
}
