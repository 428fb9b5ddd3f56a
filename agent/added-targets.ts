import type { Logger } from 'pino'
import type { ResolvedPolicy } from './config.js'
import { decide } from './policy.js'
import type { ImageRecord, StateStore } from './state-store.js'
import type { Target } from './targets/target.js'

/** The configured targets a registered image is not in: ones added to the config since it was registered. */
export function addedTargets (rec: ImageRecord, targets: Target[]): Target[] {
  return targets.filter((t) => rec.targets[t.name]?.state !== 'registered')
}

/**
 * A registered image and a target added to the config since (a restart): the image is registered
 * there too. That is a new registration, so only while policy approves it (a registered image
 * stays where it is when policy turns against it; it is not taken anywhere new). From the cached
 * file that passed sha512 (a job at `registering`, retry-step.ts: no download, no second hash),
 * else downloaded again (back to `approved`). The pipeline registers only in the targets that lack
 * it and leaves the others' lines as they are.
 */
export class AddedTargets {
  constructor (private readonly deps: {
    store: StateStore
    targets: Target[]
    log: Logger
    /** read at each call: a SIGHUP may change policy */
    policy: () => ResolvedPolicy
    /** a job for the image at `registering` */
    register: (rec: ImageRecord) => void
    /** the image's way from `approved`, or its wait for a download slot */
    download: (rec: ImageRecord) => Promise<void>
  }) {}

  /** For a registered image no job is running for, under a catalogue in force, downloads not paused. */
  async check (rec: ImageRecord): Promise<void> {
    const added = addedTargets(rec, this.deps.targets)
    if (added.length === 0) return
    const names = added.map((t) => t.name)
    const d = decide(this.deps.policy(), rec.catalogue, rec.entry, rec.approvedSha512 === rec.entry.sha512)
    if (d.verdict !== 'approved') {
      const reason = `not registered in ${names.join(', ')} (added to the config since): ${d.verdict === 'rejected' ? 'policy no longer approves it' : 'waiting for approval'} (${d.reason})`
      if (rec.reason !== reason) await this.deps.store.put(Object.assign(rec, { reason }))
      return
    }
    const cached = rec.cached && rec.verifiedFile !== undefined
    this.deps.log.info({ image: rec.id, catalogue: rec.catalogue, targets: names, from: cached ? 'cache' : 'download' }, 'registering an image in the targets added to the config since')
    if (cached) { this.deps.register(rec); return }
    await this.deps.store.transition(rec, 'approved', { reason: `not yet in ${names.join(', ')} (added to the config): the cache no longer has it, downloading it again` })
    await this.deps.download(rec)
  }
}
