import type { Logger } from 'pino'
import type { ImageEntry } from '../lib/schema.js'
import { imageExpired } from '../lib/trust.js'
import type { Catalogue } from './catalogue.js'
import { newRecord, type ImageRecord, type StateStore } from './state-store.js'

/**
 * A catalogue in force → the image records (DESIGN.md §4): a new entry is listed; the same bytes
 * re-signed update the record's entry and endorsers (and mark what the targets show of an earlier
 * listing as outdated, for Target.refresh); other bytes under the same id are a new
 * release (`replace`); a revoked, expired or dropped entry becomes unwanted, and one listed again
 * is wanted again (a retired one revived: the reconciler's next step takes it from `listed`).
 */

export interface SyncDeps {
  store: StateStore
  log: Logger
  /** a new release of `old`'s id: stop what the old one does, and put `next` (the reconciler's) */
  replace: (old: ImageRecord, next: ImageRecord) => Promise<void>
}

export async function syncCatalogue (cat: Catalogue, deps: SyncDeps, now = new Date()): Promise<void> {
  const { store } = deps
  const idx = cat.index.signed
  const listed = new Map(idx.images.map((e) => [e.id, e]))
  const revoked = new Map(idx.revoked.map((r) => [r.id, r]))
  for (const e of idx.images) {
    const rec = store.get(cat.name, e.id)
    if (rec === undefined) {
      await store.put(newRecord(cat.name, e, idx.version, cat.signers))
    } else if (rec.entry.sha512 !== e.sha512) {
      await deps.replace(rec, newRecord(cat.name, e, idx.version, cat.signers))
    } else if (rec.indexVersion !== idx.version) {
      if (!sameListing(rec.entry, rec.endorsers, e, cat.signers)) markOutdated(rec, now)
      rec.indexVersion = idx.version
      rec.endorsers = cat.signers
      rec.entry = e
      await store.put(rec)
    }
  }
  for (const rec of store.all().filter((r) => r.catalogue === cat.name)) {
    const e = listed.get(rec.id)
    const why = revoked.has(rec.id)
      ? `revoked: ${revoked.get(rec.id)?.reason ?? ''}`
      : e === undefined ? 'removed from the catalogue'
        : e.sha512 !== rec.entry.sha512 ? `replaced by version ${e.version}`
          : imageExpired(e, now) ? `expired at ${e.expires ?? ''}` : undefined
    if (why !== undefined && rec.unwantedSince === undefined) {
      await store.put(Object.assign(rec, { unwantedSince: Date.now(), unwantedReason: why }))
    } else if (why === undefined && rec.unwantedSince !== undefined) {
      if (rec.state === 'retired') {
        // an endorser extended its expiry, or listed the revoked bytes again: wanted like any new entry
        deps.log.info({ image: rec.id, was: rec.unwantedReason }, 'listed again by the catalogue')
        await store.revive(rec, `listed again (was ${rec.unwantedReason ?? 'unwanted'})`)
      } else {
        delete rec.unwantedSince; delete rec.unwantedReason
        await store.put(rec)
      }
    }
  }
}

/**
 * Whether two listings of the same bytes show the same in a target: what a target writes of an
 * entry (DESIGN.md §4's properties, a directory's sidecar), and who endorsed it. Expiry, web seeds
 * and the torrent's address are not written anywhere a refresh could change.
 */
export function sameListing (a: ImageEntry, aEndorsers: string[], b: ImageEntry, bEndorsers: string[]): boolean {
  const shown = (e: ImageEntry, endorsers: string[]): string => JSON.stringify([
    e.name, e.version, e.diskFormat, e.containerFormat, e.arch, e.os, e.minDisk, e.minRam,
    Object.entries(e.properties).sort(([x], [y]) => x < y ? -1 : x > y ? 1 : 0), [...endorsers].sort()
  ])
  return shown(a, aEndorsers) === shown(b, bEndorsers)
}

/**
 * Every target line that holds the image now shows an earlier listing. A line already outdated
 * keeps what its image shows (the listing before this one was never written there), and is
 * tried again at once: the new listing may be what the failed refresh was missing.
 */
function markOutdated (rec: ImageRecord, now: Date): void {
  for (const ts of Object.values(rec.targets)) {
    if (ts.state !== 'registered') continue
    // already waiting: the new listing is what the refresh will write (and it is a listing change now, whatever it was)
    if (ts.outdated !== undefined) { ts.outdated.attempts = 0; delete ts.outdated.nextAttemptAt; delete ts.outdated.cause; continue }
    ts.outdated = { since: now.toISOString(), version: rec.entry.version, properties: Object.keys(rec.entry.properties), attempts: 0 }
  }
}
