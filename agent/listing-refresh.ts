import type { Logger } from 'pino'
import { toImgdistError } from '../lib/errors.js'
import { targetImage } from './pipeline.js'
import type { ImageRecord, StateStore } from './state-store.js'
import type { Target } from './targets/target.js'

/**
 * A registered image whose bytes the catalogue re-signed with other metadata (a corrected name,
 * a new version string, properties, endorsers after a key rotation): each target that holds it
 * is made to show the listing now in force (Target.refresh). A failure stays on the target's
 * line, with the agent's retry backoff; the image stays registered and usable meanwhile.
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
      const outdated = ts?.outdated
      if (ts?.state !== 'registered' || outdated === undefined || (outdated.nextAttemptAt ?? 0) > now) continue
      changed = true
      if (ts.ref === undefined || t.refresh === undefined) { delete ts.outdated; continue }
      try {
        await t.refresh({ ...targetImage(rec), formerProperties: outdated.properties }, { ref: ts.ref, adopted: ts.adopted ?? false })
        delete ts.outdated; delete ts.error
        this.deps.log.info({ image: rec.id, target: t.name, from: outdated.version, to: rec.entry.version }, 'the target shows the listing now in force')
      } catch (err) {
        const e = toImgdistError(err)
        const { initialMs, maxMs } = this.deps.backoff()
        outdated.attempts++
        outdated.nextAttemptAt = now + Math.min(maxMs, initialMs * 2 ** (outdated.attempts - 1))
        ts.error = { code: e.code, message: `cannot show the listing now in force (version ${rec.entry.version}): ${e.message}` }
        this.deps.log.warn({ image: rec.id, target: t.name, err: e.message, attempts: outdated.attempts }, 'refreshing the listing failed; tried again later')
      }
    }
    if (changed && this.deps.store.isCurrent(rec)) await this.deps.store.put(rec)
  }
}
