import canonicalize from 'canonicalize'
import type { Logger } from 'pino'
import { toImgdistError } from '../lib/errors.js'
import { targetImage } from './pipeline.js'
import type { ImageRecord, StateStore, TargetState } from './state-store.js'
import type { Target, TargetSettings } from './targets/target.js'

/**
 * A registered image whose bytes the catalogue re-signed with other metadata (a corrected name,
 * a new version string, properties, endorsers after a key rotation), or that a target registered
 * under settings its config no longer has (another name template, properties, tags or visibility
 * after a restart): each target that holds it is made to show the listing now in force under its
 * current settings (Target.refresh). A failure stays on the target's line, with the agent's retry
 * backoff; the image stays registered and usable meanwhile.
 */
export class ListingRefresh {
  constructor (private readonly deps: {
    store: StateStore
    targets: Target[]
    log: Logger
    /** read at each call: a SIGHUP may change the backoff */
    backoff: () => { initialMs: number, maxMs: number }
  }) {}

  /** Refreshes the record's outdated target lines that are due; one put of the record if any changed. */
  async refresh (rec: ImageRecord, now: number): Promise<void> {
    let changed = false
    for (const t of this.deps.targets) {
      const ts = rec.targets[t.name]
      if (ts?.state !== 'registered') continue
      if (this.#settingsChanged(rec, t, ts, now)) changed = true
      const outdated = ts.outdated
      if (outdated === undefined || (outdated.nextAttemptAt ?? 0) > now) continue
      changed = true
      // nothing this target can bring up to date: not outdated, and (settings recorded) not found so again
      if (ts.ref === undefined || t.refresh === undefined) { delete ts.outdated; if (t.settings !== undefined) ts.settings = t.settings; continue }
      try {
        const former = ts.settings !== undefined ? { formerSettings: ts.settings } : {}
        // what refresh() applies: read now, as it does (a reload may change them meanwhile)
        const settings = t.settings
        await t.refresh({ ...targetImage(rec), formerProperties: outdated.properties, ...former }, { ref: ts.ref, adopted: ts.adopted ?? false })
        delete ts.outdated; delete ts.error
        if (settings !== undefined) ts.settings = settings
        this.deps.log.info({ image: rec.id, target: t.name, from: outdated.version, to: rec.entry.version, cause: outdated.cause ?? 'listing' }, 'the target shows the listing now in force')
      } catch (err) {
        const e = toImgdistError(err)
        const { initialMs, maxMs } = this.deps.backoff()
        outdated.attempts++
        outdated.nextAttemptAt = now + Math.min(maxMs, initialMs * 2 ** (outdated.attempts - 1))
        const what = outdated.cause === 'settings' ? `the target's current settings` : `the listing now in force (version ${rec.entry.version})`
        ts.error = { code: e.code, message: `cannot show ${what}: ${e.message}` }
        this.deps.log.warn({ image: rec.id, target: t.name, err: e.message, attempts: outdated.attempts }, 'refreshing the listing failed; tried again later')
      }
    }
    if (changed && this.deps.store.isCurrent(rec)) await this.deps.store.put(rec)
  }

  /**
   * Whether the line's recorded settings differ from the target's: then the line is marked
   * outdated, unless the image is one this site adopted (it shows its registrant's settings, and
   * a site's config is not a reason to rewrite it: the new settings are recorded instead).
   * The target's settings are read at each call: a reload (SIGHUP) may have changed them.
   */
  #settingsChanged (rec: ImageRecord, t: Target, ts: TargetState, now: number): boolean {
    if (t.settings === undefined || (ts.settings !== undefined && key(ts.settings) === key(t.settings))) return false
    if (ts.adopted === true || t.refresh === undefined) { ts.settings = t.settings; return true }
    if (ts.outdated === undefined) ts.outdated = { since: new Date(now).toISOString(), version: rec.entry.version, properties: Object.keys(rec.entry.properties), attempts: 0, cause: 'settings' }
    return true
  }
}

/**
 * Settings as canonical JSON, to compare a line's with the target's. Kept per object: a line
 * holds the target's own object once it recorded it, and this runs for every registered line at
 * every reconciler pass.
 */
const keys = new WeakMap<TargetSettings, string>()
function key (s: TargetSettings): string {
  let k = keys.get(s)
  if (k === undefined) { k = canonicalize(s) ?? ''; keys.set(s, k) }
  return k
}
