import type { Logger } from 'pino'
import { toImgdistError } from '../lib/errors.js'
import type { ResolvedPolicy } from './config.js'
import { targetImage } from './pipeline.js'
import { retireDue } from './policy.js'
import type { ImageRecord, StateStore, SupersededRelease, TargetState } from './state-store.js'
import type { Target, TargetImage } from './targets/target.js'

/**
 * The end of an image's life at a site (DESIGN.md §4): once the catalogue no longer wants a
 * release (revoked, expired, removed, replaced) and the retire grace is over, every target that
 * registered it applies the site's retire action. Stopping its download and seeding is the job
 * runner's part (JobRunner.stopSpreading); this one only deals with what the targets hold.
 */
export class Retirement {
  constructor (private readonly deps: {
    store: StateStore
    targets: Target[]
    log: Logger
    /** read at each call: a SIGHUP may change the action or the grace */
    policy: () => ResolvedPolicy
  }) {}

  /** An unwanted image: retired in its targets once the grace for its registrations is over. */
  async retire (rec: ImageRecord, now: number): Promise<void> {
    const policy = this.deps.policy()
    const registered = Object.values(rec.targets).some((t) => t.state === 'registered')
    if (registered && !retireDue(policy, rec.unwantedSince ?? now, now)) { await this.deps.store.put(rec); return }
    if (!await this.#retireTargets(targetImage(rec), rec.targets)) { await this.deps.store.put(rec); return } // tried again next tick
    this.deps.log.info({ image: rec.id, reason: rec.unwantedReason, action: policy.retire }, 'retired')
    await this.deps.store.transition(rec, 'retired', { reason: `${rec.unwantedReason ?? 'unwanted'} (retire: ${policy.retire})` })
  }

  /** Earlier releases of the image are retired once their grace is over, whatever the new release is doing. */
  async retireSuperseded (rec: ImageRecord, now: number): Promise<void> {
    const policy = this.deps.policy()
    const left: SupersededRelease[] = []
    let changed = false
    for (const s of rec.superseded ?? []) {
      if (!retireDue(policy, s.unwantedSince, now)) { left.push(s); continue }
      changed = true
      const img = { catalogue: rec.catalogue, indexVersion: s.indexVersion, entry: s.entry, endorsers: s.endorsers }
      if (await this.#retireTargets(img, s.targets)) {
        this.deps.log.info({ image: rec.id, version: s.entry.version, reason: s.reason, action: policy.retire }, 'retired a superseded release')
      } else left.push(s)
    }
    if (!changed) return
    if (left.length > 0) rec.superseded = left; else delete rec.superseded
    if (this.deps.store.isCurrent(rec)) await this.deps.store.put(rec)
  }

  /**
   * Applies the retire action to every target that registered the image; each target's entry
   * records the outcome. False when a target failed (the caller tries again at the next tick).
   */
  async #retireTargets (img: TargetImage, targets: Record<string, TargetState>): Promise<boolean> {
    const action = this.deps.policy().retire
    for (const t of this.deps.targets) {
      const ts = targets[t.name]
      if (ts?.state === 'failed' && ts.retiredRef !== undefined) {
        // listed again, then unwanted again before this target put the image back: still retired where it was
        const { state: _failed, retiredRef, error: _error, ...kept } = ts
        targets[t.name] = { ...kept, state: 'retired', ref: retiredRef, at: new Date().toISOString() }
        continue
      }
      if (ts?.state !== 'registered' || ts.ref === undefined) continue
      try {
        // A target that moved the image on retiring (a directory's `.img.retired`) says where to.
        const moved = await t.retire(img, { ref: ts.ref, adopted: ts.adopted ?? false }, action)
        // an earlier attempt's error is over, and so is a listing the retired image was yet to show
        const { error: _failedBefore, outdated, ...done } = ts
        const shownProperties = outdated?.properties ?? Object.keys(img.entry.properties)
        targets[t.name] = { ...done, ...(moved != null ? { ref: moved.ref } : {}), state: 'retired', shownProperties, at: new Date().toISOString() }
      } catch (err) {
        const e = toImgdistError(err)
        targets[t.name] = { ...ts, error: { code: e.code, message: e.message }, at: new Date().toISOString() }
        return false
      }
    }
    return true
  }
}
