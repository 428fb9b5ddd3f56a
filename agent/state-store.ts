import type { ImageState } from '../lib/image-state.js'
import type { ImageEntry } from '../lib/schema.js'
import type { JsonStore } from './db.js'
import type { TargetSettings } from './targets/target.js'
import type { VerifiedFile } from './verified-file.js'

/**
 * Per image (catalogue + id), the state machine of DESIGN.md §4 and what each target did with it,
 * in LevelDB. Every transition is one put of the whole record, so a crash leaves either the old
 * or the new state, never half of each.
 */

export interface ErrorInfo { code: string, message: string }

export interface TargetState {
  state: 'pending' | 'registered' | 'retired' | 'failed'
  ref?: string
  /**
   * A `failed` line of an image listed again after this target retired it: where the retired
   * image is (the `ref` it had when `retired`), kept so that the next attempt may still restore it.
   */
  retiredRef?: string
  adopted?: boolean
  at: string
  error?: ErrorInfo
  /**
   * A `registered` line whose image still shows an earlier listing of the same bytes (the
   * catalogue re-signed them with another version, name, properties or endorsers) or the target's
   * former settings. The reconciler has the target bring its metadata up to date
   * (Target.refresh) and then drops this.
   */
  outdated?: OutdatedListing
  /** the target's settings (Target.settings) when this line was registered or last refreshed */
  settings?: TargetSettings
  /**
   * A `retired` line (and a `failed` one with `retiredRef`): the entry property keys its retired
   * image shows, so that restoring it under a listing that dropped some removes those.
   */
  shownProperties?: string[]
}

export interface OutdatedListing {
  /** when the catalogue first listed the bytes differently from what the image shows */
  since: string
  /** the version string the image still shows */
  version: string
  /** the entry property keys the image was registered with: a refresh removes those the new listing dropped */
  properties: string[]
  /** `settings`: the listing is the one in force, the target's settings changed (a reload or restart with another config) */
  cause?: 'settings'
  /** failed refreshes so far, and when the next may run (the agent's `retry:` backoff) */
  attempts: number
  nextAttemptAt?: number
}

export interface ImageRecord {
  catalogue: string
  id: string
  entry: ImageEntry
  indexVersion: number
  endorsers: string[]
  state: ImageState
  /** the step a `failed` image goes back to */
  failedStep?: ImageState
  reason?: string
  error?: ErrorInfo
  retries: number
  nextAttemptAt?: number
  /** `imgdist-agent approve` for this sha512 */
  approvedSha512?: string
  progress: number
  bytesFromPeers: number
  bytesFromWebSeeds: number
  bytesUploaded: number
  /** the verified file is in the cache (and seeded) */
  cached: boolean
  /** what identified the file when it passed verification: a retry of `registering` trusts it only if unchanged (retry-step.ts) */
  verifiedFile?: VerifiedFile
  lastUsed?: number
  /** when the catalogue stopped wanting it (revoked/expired/removed), for the retire grace */
  unwantedSince?: number
  unwantedReason?: string
  targets: Record<string, TargetState>
  /**
   * Earlier releases of this id that are still registered somewhere: the catalogue replaced their
   * bytes, and they are retired once the retire grace is over, apart from the new release's way
   * through the pipeline (which a grace must not hold up).
   */
  superseded?: SupersededRelease[]
  createdAt: string
  updatedAt: string
  history: Array<{ state: ImageState, at: string }>
}

export interface SupersededRelease {
  entry: ImageEntry
  indexVersion: number
  endorsers: string[]
  /** only the targets that registered it */
  targets: Record<string, TargetState>
  unwantedSince: number
  reason: string
}

export const recordKey = (catalogue: string, id: string): string => `${catalogue}/${id}`

export class StateStore {
  readonly #db: JsonStore
  readonly #cache = new Map<string, ImageRecord>()
  constructor (db: JsonStore) { this.#db = db }

  async load (): Promise<void> {
    for await (const [key, value] of this.#db.iterator()) this.#cache.set(key, value as ImageRecord)
  }

  all (): ImageRecord[] { return [...this.#cache.values()] }
  get (catalogue: string, id: string): ImageRecord | undefined { return this.#cache.get(recordKey(catalogue, id)) }
  findById (id: string): ImageRecord[] { return this.all().filter((r) => r.id === id || recordKey(r.catalogue, r.id) === id) }

  /**
   * Whether `rec` is still the record of its image: a job that outlived its release (replaced in
   * the catalogue) must not write its superseded record back over the new one.
   */
  isCurrent (rec: ImageRecord): boolean { return this.#cache.get(recordKey(rec.catalogue, rec.id)) === rec }

  async put (rec: ImageRecord): Promise<void> {
    rec.updatedAt = new Date().toISOString()
    this.#cache.set(recordKey(rec.catalogue, rec.id), rec)
    await this.#db.put(recordKey(rec.catalogue, rec.id), rec)
  }

  /** A state change with its timestamp kept in a short history (the last 20 steps). */
  async transition (rec: ImageRecord, state: ImageState, extra: Partial<ImageRecord> = {}): Promise<void> {
    Object.assign(rec, extra)
    if (rec.state !== state) {
      rec.history.push({ state, at: new Date().toISOString() })
      if (rec.history.length > 20) rec.history.splice(0, rec.history.length - 20)
    }
    rec.state = state
    if (state !== 'failed') { delete rec.error; delete rec.failedStep }
    await this.put(rec)
  }

  /**
   * A retired image the catalogue wants again (its expiry extended, a revocation undone with the
   * same bytes): back to `listed`. The targets' retired entries stay until the pipeline registers
   * it again: their refs let a target restore what it retired (a hidden or deactivated Glance
   * image) instead of uploading the bytes a second time beside it.
   */
  async revive (rec: ImageRecord, reason: string): Promise<void> {
    delete rec.unwantedSince; delete rec.unwantedReason; delete rec.nextAttemptAt
    await this.transition(rec, 'listed', { reason, progress: 0, retries: 0, cached: false })
  }

  async delete (rec: ImageRecord): Promise<void> {
    this.#cache.delete(recordKey(rec.catalogue, rec.id))
    await this.#db.del(recordKey(rec.catalogue, rec.id))
  }
}

export function newRecord (catalogue: string, entry: ImageEntry, indexVersion: number, endorsers: string[]): ImageRecord {
  const now = new Date().toISOString()
  return {
    catalogue, id: entry.id, entry, indexVersion, endorsers, state: 'listed', retries: 0, progress: 0,
    bytesFromPeers: 0, bytesFromWebSeeds: 0, bytesUploaded: 0, cached: false, targets: {},
    createdAt: now, updatedAt: now, history: [{ state: 'listed', at: now }]
  }
}

/**
 * The record of a new release of `old`'s id. What `old` registered is carried over, to be retired
 * after the grace; whatever else it had (a download, a failure, a cache entry) is dropped with it.
 */
export function supersede (old: ImageRecord, next: ImageRecord, now: number): ImageRecord {
  const registered = Object.fromEntries(Object.entries(old.targets).filter(([, ts]) => ts.state === 'registered' && ts.ref !== undefined))
  const carried: SupersededRelease[] = Object.keys(registered).length === 0
    ? []
    : [{ entry: old.entry, indexVersion: old.indexVersion, endorsers: old.endorsers, targets: registered, unwantedSince: old.unwantedSince ?? now, reason: `replaced by version ${next.entry.version}` }]
  const superseded = [...(old.superseded ?? []), ...carried]
  return superseded.length > 0 ? { ...next, superseded } : next
}
