import { rfc3339 } from './duration.js'
import { ImgdistError } from './errors.js'
import { keyEntry } from './document.js'
import type { ImageEntry, IndexDocument, IndexSigned, RootDocument, RootSigned } from './schema.js'

/**
 * Pure edits of catalogue documents, used by imgdist-sign. Any change of content drops the
 * existing signatures: they covered other bytes and would only fail verification.
 */

export interface RootParams {
  name: string
  version?: number
  expires: Date
  rootKeys: string[] // ed25519:<base64>
  rootThreshold: number
  indexKeys: string[]
  indexThreshold: number
}

export function buildRoot (p: RootParams): RootDocument {
  const rootEntries = p.rootKeys.map(keyEntry)
  const indexEntries = p.indexKeys.map(keyEntry)
  const keys: Record<string, string> = Object.fromEntries([...rootEntries, ...indexEntries])
  const distinct = (ids: string[]): string[] => [...new Set(ids)]
  const signed: RootSigned = {
    type: 'root',
    name: p.name,
    version: p.version ?? 1,
    expires: rfc3339(p.expires),
    keys,
    roles: {
      root: { keyids: distinct(rootEntries.map(([id]) => id)), threshold: p.rootThreshold },
      index: { keyids: distinct(indexEntries.map(([id]) => id)), threshold: p.indexThreshold }
    }
  }
  return { signed, signatures: [] }
}

export function emptyIndex (name: string, now: Date, expires: Date): IndexDocument {
  return { signed: { type: 'index', name, version: 0 as number, issued: rfc3339(now), expires: rfc3339(expires), images: [], revoked: [] }, signatures: [] }
}

/** A new version of the index with `edit` applied: version bumped, issued now, signatures dropped. */
export function editIndex (doc: IndexDocument, now: Date, edit: (s: IndexSigned) => IndexSigned): IndexDocument {
  const next = edit(structuredClone(doc.signed))
  return { signed: { ...next, version: doc.signed.version + 1, issued: rfc3339(now) }, signatures: [] }
}

/** Adds the image, or replaces the entry with the same id; a re-added id is no longer revoked. */
export function upsertImage (s: IndexSigned, entry: ImageEntry): IndexSigned {
  const images = s.images.filter((i) => i.id !== entry.id)
  images.push(entry)
  images.sort((a, b) => a.id.localeCompare(b.id))
  return { ...s, images, revoked: s.revoked.filter((r) => r.id !== entry.id) }
}

/** Moves an image from `images` to `revoked`; agents retire it per their site policy. */
export function revokeImage (s: IndexSigned, id: string, reason: string, at: Date): IndexSigned {
  const listed = s.images.some((i) => i.id === id)
  const already = s.revoked.some((r) => r.id === id)
  if (!listed && !already) throw new ImgdistError('NOT_FOUND', `no image with id "${id}" in the index`)
  return {
    ...s,
    images: s.images.filter((i) => i.id !== id),
    revoked: [...s.revoked.filter((r) => r.id !== id), { id, reason, at: rfc3339(at) }]
  }
}
