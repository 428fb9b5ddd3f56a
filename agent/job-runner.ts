import type { Logger } from 'pino'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import { backoffMs } from '../lib/backoff.js'
import { chooseEvictions } from './cache.js'
import type { ResolvedConfig } from './config.js'
import type { Swarm } from '../swarm/swarm.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import { CatalogueExpiredError, filePathOf, obtainTorrent, runPipeline, type PipelineDeps } from './pipeline.js'
import type { Catalogue } from './catalogue.js'
import type { RetryStep } from './retry-step.js'
import { recordKey, type ImageRecord, type StateStore } from './state-store.js'
import { isVerifiedFile } from './verified-file.js'
import type { Target } from './targets/target.js'

/**
 * What the agent does in the swarm for each image, as the reconciler decides it: a job runs the
 * pipeline (approved, or the step a retry goes back to, → registered), at most
 * `maxConcurrentDownloads` of them in the download phase, and its torrent then stays seeding
 * until it is dropped, spread no more, or evicted from the cache. The swarm's byte counters are
 * folded into the records here, once a tick.
 */

interface Job {
  /** the record the job was started for (a new release gets a new record) */
  rec: ImageRecord
  abort: AbortController
  done: Promise<void>
  /** settles when the download has begun (the swarm has the torrent) or the job ended before that */
  begun: Promise<void>
  downloading: boolean
  handle?: TorrentHandle
  base: { peers: number, web: number, up: number }
}

/** A torrent seeded after its job, with the record's upload count from before the handle's counter began. */
interface Seeding { handle: TorrentHandle, upBase: number, catalogue: string, id: string }

export class JobRunner {
  verificationFailures = 0
  readonly #jobs = new Map<string, Job>()
  /** Torrents seeded after their job; the durable upload total is upBase + the handle's count. */
  readonly #seeding = new Map<string, Seeding>()
  /** How much of each handle's counters is already folded into its record (by #absorb). */
  readonly #counted = new WeakMap<TorrentHandle, { peers: number, web: number, up: number }>()
  #closed = false

  constructor (private readonly deps: {
    store: StateStore, swarm: Swarm, targets: Target[], log: Logger, http: PipelineDeps['http'],
    /** read at each use: a SIGHUP may replace the config */
    cfg: () => ResolvedConfig
    paused: () => boolean
    /** whether a catalogue is in force (DESIGN.md §3: freeze); a job stops registering when not */
    inForce: (catalogue: string) => boolean
    /** asks the reconciler for a tick: a download slot came free, or a job ended */
    kick: () => void
  }) {}

  running (rec: ImageRecord): boolean {
    return this.#jobs.has(recordKey(rec.catalogue, rec.id))
  }

  handleOf (rec: ImageRecord): TorrentHandle | undefined {
    const key = recordKey(rec.catalogue, rec.id)
    return this.#jobs.get(key)?.handle ?? this.#seeding.get(key)?.handle
  }

  /** Settles once every running job has begun its download or ended. */
  async begun (): Promise<void> {
    await Promise.all([...this.#jobs.values()].map(async (j) => { await j.begun }))
  }

  /**
   * Starts the image's job unless paused, closed, or every download slot is taken. A `retry` job
   * (retry-step.ts) downloads nothing and takes no slot: a registration retried behind downloads
   * would wait for bytes it does not need.
   */
  start (rec: ImageRecord, cat: Catalogue | undefined, retry?: RetryStep): void {
    if (this.deps.paused() || this.#closed) return
    const cfg = this.deps.cfg()
    const downloading = [...this.#jobs.values()].filter((j) => j.downloading).length
    if (retry === undefined && downloading >= cfg.swarm.maxConcurrentDownloads) return
    const key = recordKey(rec.catalogue, rec.id)
    let begin = (): void => {}
    const begun = new Promise<void>((resolve) => { begin = resolve })
    const job: Job = { rec, abort: new AbortController(), downloading: retry === undefined, done: Promise.resolve(), begun, base: { peers: rec.bytesFromPeers, web: rec.bytesFromWebSeeds, up: rec.bytesUploaded } }
    this.#jobs.set(key, job)
    const { store, swarm, targets, http, log } = this.deps
    const deps: PipelineDeps = {
      store, swarm, targets, http, log, dataDir: cfg.dataDir, onDownloadEnd: () => { job.downloading = false; this.deps.kick() }, paused: this.deps.paused,
      inForce: () => this.deps.inForce(rec.catalogue)
    }
    job.done = runPipeline(deps, rec, cat, job.abort.signal, (h) => {
      // A handle outlives a failed job (a registration that failed keeps its verified torrent in
      // the swarm), and its counters run from the handle's start, not this job's: the base leaves
      // out what the record already holds of them, or every retry added the image again.
      const seen = this.#counted.get(h) ?? { peers: h.counters.bytesFromPeers, web: h.counters.bytesFromWebSeeds, up: h.counters.uploaded }
      job.base = { peers: job.base.peers - seen.peers, web: job.base.web - seen.web, up: job.base.up - seen.up }
      job.handle = h
      begin()
    }, retry)
      .then(() => {
        // The handle's upload counter runs from this job's start, so the base is the count from
        // before the job. Taken from the record at the first seeding round instead, bytes uploaded
        // between the job's last absorb and that round were lost (a Transmission leecher that took
        // the whole image in that second showed 0 uploaded).
        if (job.handle !== undefined) this.#seeding.set(key, { handle: job.handle, upBase: job.base.up, catalogue: rec.catalogue, id: rec.id })
        this.#absorb(rec, job)
      })
      .catch(async (err) => {
        this.#absorb(rec, job)
        // a superseded record must not be written back over its successor
        if (!this.deps.store.isCurrent(rec)) return
        // a job stopped for a reason ends with it, whatever the step it was in threw on the abort
        const why: unknown = job.abort.signal.reason
        const e = why instanceof ImgdistError ? why : toImgdistError(err)
        if (e instanceof CatalogueExpiredError) { await this.#holdExpired(rec, job, e); return }
        // stopped (SIGTERM, a new release, policy): the bytes counted up to now are kept
        if (e.code === 'ABORTED') {
          // At shutdown the torrent would stay in the swarm until the swarm closes, and a block
          // landing meanwhile is on disk (resumed next start) but in no saved count: take it out
          // first, so the count saved covers every byte written.
          if (this.#closed) { await this.drop(rec, false); this.#absorb(rec, job) }
          await this.deps.store.put(rec)
          return
        }
        if (e.code === 'HASH_MISMATCH') this.verificationFailures++
        rec.retries++
        const { retryInitialMs, retryMaxMs } = this.deps.cfg()
        const delay = backoffMs(rec.retries, retryInitialMs, retryMaxMs)
        this.deps.log.warn({ image: rec.id, code: e.code, err: e.message, retryInMs: delay }, 'image step failed')
        await this.#failed(rec, e, Date.now() + delay)
      })
      .finally(() => { begin(); this.#jobs.delete(key); this.deps.kick() })
  }

  /**
   * Stops a running job and waits until it has ended (its last writes done). A `reason` is what
   * the job ends with (else it was just stopped: ABORTED).
   */
  async stop (rec: ImageRecord, reason?: ImgdistError): Promise<void> {
    const job = this.#jobs.get(recordKey(rec.catalogue, rec.id))
    if (job === undefined) return
    job.abort.abort(reason)
    await job.done.catch(() => {})
  }

  /**
   * Takes a torrent out of the swarm: no more download or upload of it. An aborted job leaves its
   * handle in the swarm, which would go on fetching (and sharing) bytes nobody wants.
   */
  async drop (rec: ImageRecord, deleteData: boolean): Promise<void> {
    const key = recordKey(rec.catalogue, rec.id)
    const infoHash = rec.entry.infoHash
    const seeding = this.#seeding.get(key)
    if (seeding !== undefined && seeding.handle === this.deps.swarm.get(infoHash)) this.#seeding.delete(key)
    if (this.deps.swarm.get(infoHash) === undefined && !deleteData) return
    await this.deps.swarm.remove(infoHash, deleteData)
  }

  /**
   * A revoked or withdrawn image must stop spreading at once, whatever the grace for its
   * registrations; a download that was stopped must not go on in the swarm either. A failed image
   * may have pieces on disk with no torrent in the swarm (stopped when its catalogue expired).
   */
  async stopSpreading (rec: ImageRecord): Promise<void> {
    await this.stop(rec)
    if (this.#seeding.has(recordKey(rec.catalogue, rec.id)) || rec.cached || rec.state === 'failed' || this.deps.swarm.get(rec.entry.infoHash) !== undefined) {
      await this.drop(rec, true)
      rec.cached = false
    }
  }

  /**
   * The job's catalogue went out of force: its torrent leaves the swarm (no download, no upload:
   * an expired catalogue vouches for nothing new) with its pieces kept on disk, and the image
   * waits as `failed` with CATALOGUE_EXPIRED, due at once, which the next tick under a current
   * index turns back into `approved`. Its retries are not counted: the image did nothing wrong.
   */
  async #holdExpired (rec: ImageRecord, job: Job, e: CatalogueExpiredError): Promise<void> {
    if (job.handle !== undefined) rec.progress = job.handle.progress
    await this.drop(rec, false)
    this.#absorb(rec, job) // what arrived until the torrent stopped
    this.deps.log.warn({ image: rec.id, catalogue: rec.catalogue, step: rec.state, progress: rec.progress }, 'catalogue no longer in force: stopped the image, keeping its data')
    await this.#failed(rec, e, Date.now())
  }

  /**
   * The image waits as `failed` at the step it was in, with the error, until `nextAttemptAt`. A
   * retry that failed before it left `failed` (its torrent or file unreadable) failed at the same step.
   */
  async #failed (rec: ImageRecord, e: ImgdistError, nextAttemptAt: number): Promise<void> {
    const failedStep = rec.state === 'failed' ? rec.failedStep : rec.state
    await this.deps.store.transition(rec, 'failed', { failedStep, error: { code: e.code, message: e.message }, nextAttemptAt })
  }

  /** Folds a job's live counters into the durable record. */
  #absorb (rec: ImageRecord, job: Job): void {
    const c = job.handle?.counters
    if (c === undefined) return
    rec.bytesFromPeers = job.base.peers + c.bytesFromPeers
    rec.bytesFromWebSeeds = job.base.web + c.bytesFromWebSeeds
    rec.bytesUploaded = job.base.up + c.uploaded
    this.#counted.set(job.handle as TorrentHandle, { peers: c.bytesFromPeers, web: c.bytesFromWebSeeds, up: c.uploaded })
  }

  async updateProgress (): Promise<void> {
    for (const job of this.#jobs.values()) {
      const rec = job.rec
      if (!this.deps.store.isCurrent(rec) || job.handle === undefined) continue
      this.#absorb(rec, job)
      rec.progress = job.handle.progress
      await this.deps.store.put(rec)
    }
    for (const s of this.#seeding.values()) {
      const rec = this.#foldUploaded(s)
      if (rec !== undefined) await this.deps.store.put(rec)
    }
  }

  /** Folds a seeding torrent's upload counter into its record: the record if that changed it. */
  #foldUploaded ({ handle, upBase, catalogue, id }: Seeding): ImageRecord | undefined {
    const rec = this.deps.store.get(catalogue, id)
    if (rec === undefined || rec.bytesUploaded === upBase + handle.counters.uploaded) return undefined
    rec.bytesUploaded = upBase + handle.counters.uploaded
    // an upload is a use: the cache evicts the least recently used image first
    rec.lastUsed = Date.now()
    return rec
  }

  /**
   * A cached, registered image seeds again after a restart. The file that passed sha512 and is
   * provably unchanged (verified-file.ts) is seeded as it is; any other is sha1-checked piece by
   * piece first, a read of the whole image, as a site with many GB cached would pay at every start.
   */
  async seed (rec: ImageRecord): Promise<void> {
    try {
      const t = await obtainTorrent({ http: this.deps.http, dataDir: this.deps.cfg().dataDir }, rec, undefined)
      const path = filePathOf(this.deps.swarm, rec, t.name)
      const verified = await isVerifiedFile(rec, path)
      if (!verified) this.deps.log.info({ image: rec.id, path }, 'the cached file is not provably the one verified: checking its pieces before seeding it')
      const handle = this.deps.swarm.add(rec.entry.infoHash, t.bytes, t.webSeeds, { verified })
      this.#seeding.set(recordKey(rec.catalogue, rec.id), { handle, upBase: rec.bytesUploaded - handle.counters.uploaded, catalogue: rec.catalogue, id: rec.id })
    } catch (err) {
      this.deps.log.warn({ image: rec.id, err: String(err) }, 'cannot seed a cached image; dropping it from the cache')
      await this.deps.store.put(Object.assign(rec, { cached: false }))
    }
  }

  async evict (): Promise<void> {
    const cached = this.deps.store.all().filter((r) => r.cached)
    const items = cached.map((r) => ({ key: recordKey(r.catalogue, r.id), size: r.entry.size, lastUsed: r.lastUsed ?? 0, busy: this.#jobs.has(recordKey(r.catalogue, r.id)) || r.state !== 'registered' }))
    for (const key of chooseEvictions(items, this.deps.cfg().cache.maxBytes)) {
      const rec = cached.find((r) => recordKey(r.catalogue, r.id) === key) as ImageRecord
      this.#seeding.delete(key)
      await this.deps.swarm.remove(rec.entry.infoHash, true)
      await this.deps.store.put(Object.assign(rec, { cached: false }))
      this.deps.log.info({ image: rec.id, size: rec.entry.size }, 'evicted from the cache (least recently used)')
    }
  }

  /** Stops every job and waits for them to end; none starts after this. */
  async close (): Promise<void> {
    this.#closed = true
    for (const job of this.#jobs.values()) job.abort.abort()
    await Promise.all([...this.#jobs.values()].map(async (j) => { await j.done.catch(() => {}) }))
  }

  /**
   * At shutdown, once no job or tick runs (a tick's put of an older count could land after this
   * one's): the ticks save a seeding torrent's uploads once a second, so what peers took since the
   * last one was in no saved count. Each torrent leaves the swarm before its count is read, as only
   * then is the count final: removal ends its upload loops, closes its sockets and waits for its
   * reads in flight, so no block goes to a socket after the save, and a block read for a peer that
   * closed meanwhile is not counted (upload.ts).
   */
  async stopSeeding (): Promise<void> {
    const seeding = [...this.#seeding.values()]
    this.#seeding.clear()
    const { swarm, store } = this.deps
    await Promise.all(seeding.map(async ({ handle }) => { if (swarm.get(handle.infoHash) === handle) await swarm.remove(handle.infoHash, false) }))
    for (const s of seeding) {
      const rec = this.#foldUploaded(s)
      if (rec !== undefined) await store.put(rec)
    }
  }
}
