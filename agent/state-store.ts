import type { ImageState } from '../lib/image-state.js'
import type { ImageEntry } from '../lib/schema.js'
import type { JsonStore } from './db.js'

/**
 * Per image (catalogue + id), the state machine of DESIGN.md §4 and what each target did with it,
 * in LevelDB. Every transition is one put of the whole record, so a crash leaves either the old
 * or the new state, never half of each.
 */

export interface ErrorInfo { code: string, message: string }

export interface TargetState {
  state: 'pending' | 'registered' | 'retired' | 'failed'
  ref?: string
  adopted?: boolean
  at: string
  error?: ErrorInfo
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
  lastUsed?: number
  /** when the catalogue stopped wanting it (revoked/expired/removed), for the retire grace */
  unwantedSince?: number
  unwantedReason?: string
  targets: Record<string, TargetState>
  createdAt: string
  updatedAt: string
  history: Array<{ state: ImageState, at: string }>
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
