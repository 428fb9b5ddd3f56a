import type { Logger } from 'pino'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import { imageExpired } from '../lib/trust.js'
import { backoffMs } from '../lib/backoff.js'
import { chooseEvictions } from './cache.js'
import type { ResolvedConfig } from './config.js'
import type { Swarm } from '../swarm/swarm.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import { CatalogueExpiredError, obtainTorrent, runPipeline, type PipelineDeps } from './pipeline.js'
import type { JsonStore } from './db.js'
import type { Catalogue, CataloguePoller } from './poller.js'
import { decide } from './policy.js'
import { Retirement } from './retirement.js'
import { newRecord, recordKey, supersede, type ImageRecord, type StateStore } from './state-store.js'
import type { Target } from './targets/target.js'

/**
 * Drives every image through DESIGN.md §4: catalogue → policy → pipeline → registered → retired.
 * One tick at a time; long steps run as per-image jobs, at most `maxConcurrentDownloads` in the
 * download phase. Failures go to `failed` with a backoff and come back to `approved`.
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

const PAUSED_KEY = 'paused'
const PAUSED_AT_KEY = 'pausedAt'
/** An approved image of a catalogue that is not in force (expired, not yet accepted) waits with this reason. */
const HELD_REASON = 'waiting for a current catalogue (the accepted index expired or none is accepted yet)'

export class Reconciler {
  paused = false
  /** when the operator paused (RFC 3339), if paused; undefined for a pause saved by an older agent */
  pausedAt?: string
  verificationFailures = 0
  readonly #jobs = new Map<string, Job>()
  /**
   * Torrents seeded after their job, with the record's upload count from before the handle's
   * counter began (the durable total is upBase + the handle's count).
   */
  readonly #seeding = new Map<string, { handle: TorrentHandle, upBase: number }>()
  /** How much of each handle's counters is already folded into its record (by #absorb). */
  readonly #counted = new WeakMap<TorrentHandle, { peers: number, web: number, up: number }>()
  #ticking?: Promise<void>
  #again = false
  #timer?: NodeJS.Timeout
  #closed = false
  cfg: ResolvedConfig
  readonly #retirement: Retirement

  constructor (cfg: ResolvedConfig, private readonly deps: {
    store: StateStore, swarm: Swarm, targets: Target[], pollers: CataloguePoller[], log: Logger, http: PipelineDeps['http'],
    /** where the operator's pause is kept, so that it outlasts a restart */
    settings: JsonStore
  }) {
    this.cfg = cfg
    this.#retirement = new Retirement({ store: deps.store, targets: deps.targets, log: deps.log, policy: () => this.cfg.policy })
  }

  /** After a crash or restart: unfinished steps go back to `approved` (pieces on disk are kept). */
  async start (): Promise<void> {
    const { store } = this.deps
    // An operator who paused (a maintenance window, a full disk) expects a restart or a reboot
    // not to undo it.
    if (await this.deps.settings.get(PAUSED_KEY) === true) {
      this.paused = true
      const at = await this.deps.settings.get(PAUSED_AT_KEY)
      if (typeof at === 'string') this.pausedAt = at
      this.deps.log.info('paused since before this start: downloads wait for `imgdist-agent resume`')
    }
    for (const rec of store.all()) {
      if (rec.state === 'downloading' || rec.state === 'verifying' || rec.state === 'registering') {
        await store.transition(rec, 'approved', { reason: `resumed after restart (was ${rec.state})` })
      }
    }
    await Promise.all(store.all().filter((r) => r.state === 'registered' && r.cached).map(async (r) => { await this.#startSeeding(r) }))
    this.#timer = setInterval(() => { this.kick() }, 1000)
    this.kick()
  }

  handleOf (rec: ImageRecord): TorrentHandle | undefined {
    return this.#jobs.get(recordKey(rec.catalogue, rec.id))?.handle ?? this.#seeding.get(recordKey(rec.catalogue, rec.id))?.handle
  }

  /**
   * Resolves once no tick is running or queued and every job they started has begun its download
   * or ended: the agent builds its API only then, so as not to hold up its first downloads.
   */
  async idle (): Promise<void> {
    while (this.#ticking !== undefined) await this.#ticking
    await Promise.all([...this.#jobs.values()].map(async (j) => { await j.begun }))
  }

  /** Runs a tick soon; ticks never overlap, and a kick during a tick runs one more after it. */
  kick (): void {
    if (this.#closed) return
    if (this.#ticking !== undefined) { this.#again = true; return }
    this.#ticking = this.#tick().catch((err) => { this.deps.log.error({ err: String(err) }, 'reconcile tick failed') })
      .finally(() => { this.#ticking = undefined; if (this.#again) { this.#again = false; this.kick() } })
  }

  async #tick (): Promise<void> {
    for (const p of this.deps.pollers) if (p.current !== undefined) await this.#sync(p.current)
    const now = Date.now()
    for (const rec of this.deps.store.all()) {
      if (this.#closed) return
      await this.#step(rec, now)
    }
    await this.#updateProgress()
    await this.#evict()
  }

  /** Catalogue → records: new entries are listed; revoked, expired or dropped ones become unwanted. */
  async #sync (cat: Catalogue): Promise<void> {
    const { store } = this.deps
    const idx = cat.index.signed
    const listed = new Map(idx.images.map((e) => [e.id, e]))
    const revoked = new Map(idx.revoked.map((r) => [r.id, r]))
    const now = new Date()
    for (const e of idx.images) {
      const rec = store.get(cat.name, e.id)
      if (rec === undefined) {
        await store.put(newRecord(cat.name, e, idx.version, cat.signers))
      } else if (rec.entry.sha512 !== e.sha512) {
        await this.#replace(rec, newRecord(cat.name, e, idx.version, cat.signers))
      } else if (rec.indexVersion !== idx.version) {
        rec.indexVersion = idx.version
        rec.endorsers = cat.signers
        if (rec.entry.sha512 === e.sha512) rec.entry = e
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
          this.deps.log.info({ image: rec.id, was: rec.unwantedReason }, 'listed again by the catalogue')
          await store.revive(rec, `listed again (was ${rec.unwantedReason ?? 'unwanted'})`)
        } else {
          delete rec.unwantedSince; delete rec.unwantedReason
          await store.put(rec)
        }
      }
    }
  }

  /**
   * A new release (other bytes) of an id: whatever the old one was doing stops now, and the new
   * one goes through the pipeline at once. What the old one registered is kept on the new record
   * and retired after the grace (Retirement.retireSuperseded); its bytes are no longer wanted anywhere.
   */
  async #replace (old: ImageRecord, next: ImageRecord): Promise<void> {
    const key = recordKey(old.catalogue, old.id)
    await this.#stopJob(key)
    await this.#dropTorrent(key, old.entry.infoHash, true)
    this.deps.log.info({ image: old.id, from: old.entry.version, to: next.entry.version, was: old.state }, 'replaced by a new release')
    await this.deps.store.put(supersede(old, next, Date.now()))
  }

  /**
   * Stops a running job and waits until it has ended (its last writes done). A `reason` is what
   * the job ends with (else it was just stopped: ABORTED).
   */
  async #stopJob (key: string, reason?: ImgdistError): Promise<void> {
    const job = this.#jobs.get(key)
    if (job === undefined) return
    job.abort.abort(reason)
    await job.done.catch(() => {})
  }

  /**
   * Takes a torrent out of the swarm: no more download or upload of it. An aborted job leaves its
   * handle in the swarm, which would go on fetching (and sharing) bytes nobody wants.
   */
  async #dropTorrent (key: string, infoHash: string, deleteData: boolean): Promise<void> {
    const seeding = this.#seeding.get(key)
    if (seeding !== undefined && seeding.handle === this.deps.swarm.get(infoHash)) this.#seeding.delete(key)
    if (this.deps.swarm.get(infoHash) === undefined && !deleteData) return
    await this.deps.swarm.remove(infoHash, deleteData)
  }

  async #step (rec: ImageRecord, now: number): Promise<void> {
    const { store } = this.deps
    const key = recordKey(rec.catalogue, rec.id)
    if (rec.superseded !== undefined) await this.#retirement.retireSuperseded(rec, now)
    if (rec.unwantedSince !== undefined) {
      if (rec.state !== 'retired') { await this.#stopSpreading(rec); await this.#retirement.retire(rec, now) }
      return
    }
    // Policy (reloaded by SIGHUP at any time) is asked again at every step short of `registered`.
    // A registered image stays registered when policy turns against it: removing what users may
    // already run is the catalogue's call (revoke) or the operator's, not a config edit's side effect.
    if (rec.state === 'registered' || rec.state === 'retired') return
    const d = decide(this.cfg.policy, rec.catalogue, rec.entry, rec.approvedSha512 === rec.entry.sha512)
    if (this.#jobs.has(key)) {
      if (d.verdict !== 'approved') await this.#withdraw(rec, d)
      else if (!this.#catalogueInForce(rec.catalogue)) await this.#stopJob(key, new CatalogueExpiredError(rec.catalogue))
      return
    }
    switch (rec.state) {
      case 'listed': case 'rejected': case 'awaiting-approval': case 'approved': {
        const keep = rec.state === 'approved' && d.verdict === 'approved'
        if (!keep && (d.verdict !== rec.state || rec.reason !== d.reason)) await store.transition(rec, d.verdict, { reason: d.reason })
        if (rec.state === 'approved') await this.#startOrHold(rec)
        break
      }
      case 'failed':
        if (d.verdict !== 'approved') {
          await this.#withdraw(rec, d)
        } else if (rec.nextAttemptAt !== undefined && now >= rec.nextAttemptAt && !this.paused && this.#catalogueInForce(rec.catalogue)) {
          const reason = rec.error?.code === 'CATALOGUE_EXPIRED' ? 'its catalogue is in force again; resuming' : `retry ${rec.retries}`
          await store.transition(rec, 'approved', { reason })
          await this.#startOrHold(rec)
        }
        break
      default: break
    }
  }

  /**
   * Policy no longer approves an image that is in flight or failed: its job stops, and a
   * rejected image's bytes leave the swarm and the disk (one waiting for approval keeps them).
   */
  async #withdraw (rec: ImageRecord, d: { verdict: 'rejected' | 'awaiting-approval', reason: string }): Promise<void> {
    const key = recordKey(rec.catalogue, rec.id)
    await this.#stopJob(key)
    // the job may have registered it before it saw the abort
    if (rec.state === 'registered' || !this.deps.store.isCurrent(rec)) return
    const rejected = d.verdict === 'rejected'
    await this.#dropTorrent(key, rec.entry.infoHash, rejected)
    this.deps.log.info({ image: rec.id, was: rec.state, verdict: d.verdict, reason: d.reason }, 'policy no longer approves an image in progress; stopped')
    await this.deps.store.transition(rec, d.verdict, { reason: d.reason, ...(rejected ? { progress: 0, cached: false } : {}) })
  }

  /** A catalogue whose poller has no accepted, unexpired index is not acted on (DESIGN.md §3: freeze). */
  #catalogueInForce (catalogue: string): boolean {
    const p = this.deps.pollers.find((x) => x.name === catalogue)
    return p === undefined || p.current !== undefined
  }

  async #startOrHold (rec: ImageRecord): Promise<void> {
    if (this.#catalogueInForce(rec.catalogue)) { this.#maybeStart(rec); return }
    if (rec.reason !== HELD_REASON) await this.deps.store.put(Object.assign(rec, { reason: HELD_REASON }))
  }

  #maybeStart (rec: ImageRecord): void {
    if (this.paused || this.#closed) return
    const downloading = [...this.#jobs.values()].filter((j) => j.downloading).length
    if (downloading >= this.cfg.swarm.maxConcurrentDownloads) return
    const key = recordKey(rec.catalogue, rec.id)
    const cat = this.deps.pollers.find((p) => p.name === rec.catalogue)?.current
    let begin = (): void => {}
    const begun = new Promise<void>((resolve) => { begin = resolve })
    const job: Job = { rec, abort: new AbortController(), downloading: true, done: Promise.resolve(), begun, base: { peers: rec.bytesFromPeers, web: rec.bytesFromWebSeeds, up: rec.bytesUploaded } }
    this.#jobs.set(key, job)
    const deps: PipelineDeps = {
      ...this.deps, dataDir: this.cfg.dataDir, onDownloadEnd: () => { job.downloading = false; this.kick() }, paused: () => this.paused,
      inForce: () => this.#catalogueInForce(rec.catalogue)
    }
    job.done = runPipeline(deps, rec, cat, job.abort.signal, (h) => {
      // A handle outlives a failed job (a registration that failed keeps its verified torrent in
      // the swarm), and its counters run from the handle's start, not this job's: the base leaves
      // out what the record already holds of them, or every retry added the image again.
      const seen = this.#counted.get(h) ?? { peers: h.counters.bytesFromPeers, web: h.counters.bytesFromWebSeeds, up: h.counters.uploaded }
      job.base = { peers: job.base.peers - seen.peers, web: job.base.web - seen.web, up: job.base.up - seen.up }
      job.handle = h
      begin()
    })
      .then(() => {
        // The handle's upload counter runs from this job's start, so the base is the count from
        // before the job. Taken from the record at the first seeding round instead, bytes uploaded
        // between the job's last absorb and that round were lost (a Transmission leecher that took
        // the whole image in that second showed 0 uploaded).
        if (job.handle !== undefined) this.#seeding.set(key, { handle: job.handle, upBase: job.base.up })
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
        if (e.code === 'ABORTED') { await this.deps.store.put(rec); return }
        if (e.code === 'HASH_MISMATCH') this.verificationFailures++
        rec.retries++
        const delay = backoffMs(rec.retries, this.cfg.retryInitialMs, this.cfg.retryMaxMs)
        this.deps.log.warn({ image: rec.id, code: e.code, err: e.message, retryInMs: delay }, 'image step failed')
        await store(this.deps.store, rec, e, delay)
      })
      .finally(() => { begin(); this.#jobs.delete(key); this.kick() })
    async function store (s: StateStore, r: ImageRecord, e: { code: string, message: string }, delay: number): Promise<void> {
      await s.transition(r, 'failed', { failedStep: r.state, error: { code: e.code, message: e.message }, nextAttemptAt: Date.now() + delay })
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
    await this.#dropTorrent(recordKey(rec.catalogue, rec.id), rec.entry.infoHash, false)
    this.#absorb(rec, job) // what arrived until the torrent stopped
    this.deps.log.warn({ image: rec.id, catalogue: rec.catalogue, step: rec.state, progress: rec.progress }, 'catalogue no longer in force: stopped the image, keeping its data')
    await this.deps.store.transition(rec, 'failed', { failedStep: rec.state, error: { code: e.code, message: e.message }, nextAttemptAt: Date.now() })
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

  async #updateProgress (): Promise<void> {
    for (const job of this.#jobs.values()) {
      const rec = job.rec
      if (!this.deps.store.isCurrent(rec) || job.handle === undefined) continue
      this.#absorb(rec, job)
      rec.progress = job.handle.progress
      await this.deps.store.put(rec)
    }
    for (const [key, { handle: h, upBase }] of this.#seeding) {
      const rec = this.deps.store.all().find((r) => recordKey(r.catalogue, r.id) === key)
      if (rec === undefined) continue
      if (rec.bytesUploaded !== upBase + h.counters.uploaded) {
        rec.bytesUploaded = upBase + h.counters.uploaded
        rec.lastUsed = Date.now()
        await this.deps.store.put(rec)
      }
    }
  }

  async #startSeeding (rec: ImageRecord): Promise<void> {
    try {
      const t = await obtainTorrent({ http: this.deps.http, dataDir: this.cfg.dataDir }, rec, undefined)
      const handle = this.deps.swarm.add(rec.entry.infoHash, t.bytes, t.webSeeds)
      this.#seeding.set(recordKey(rec.catalogue, rec.id), { handle, upBase: rec.bytesUploaded - handle.counters.uploaded })
    } catch (err) {
      this.deps.log.warn({ image: rec.id, err: String(err) }, 'cannot seed a cached image; dropping it from the cache')
      await this.deps.store.put(Object.assign(rec, { cached: false }))
    }
  }

  /**
   * A revoked or withdrawn image must stop spreading at once, whatever the grace for its
   * registrations; a download that was stopped must not go on in the swarm either. A failed image
   * may have pieces on disk with no torrent in the swarm (stopped when its catalogue expired).
   */
  async #stopSpreading (rec: ImageRecord): Promise<void> {
    const key = recordKey(rec.catalogue, rec.id)
    await this.#stopJob(key)
    if (this.#seeding.has(key) || rec.cached || rec.state === 'failed' || this.deps.swarm.get(rec.entry.infoHash) !== undefined) {
      await this.#dropTorrent(key, rec.entry.infoHash, true)
      rec.cached = false
    }
  }

  async #evict (): Promise<void> {
    const cached = this.deps.store.all().filter((r) => r.cached)
    const items = cached.map((r) => ({ key: recordKey(r.catalogue, r.id), size: r.entry.size, lastUsed: r.lastUsed ?? 0, busy: this.#jobs.has(recordKey(r.catalogue, r.id)) || r.state !== 'registered' }))
    for (const key of chooseEvictions(items, this.cfg.cache.maxBytes)) {
      const rec = cached.find((r) => recordKey(r.catalogue, r.id) === key) as ImageRecord
      this.#seeding.delete(key)
      await this.deps.swarm.remove(rec.entry.infoHash, true)
      await this.deps.store.put(Object.assign(rec, { cached: false }))
      this.deps.log.info({ image: rec.id, size: rec.entry.size }, 'evicted from the cache (least recently used)')
    }
  }

  /**
   * Operator actions; each returns what it did, in words for the operator, or throws when it
   * cannot do what was asked (an approval does not override the site's deny rules: that is a
   * policy change, made in the config).
   */
  async approve (rec: ImageRecord): Promise<string> {
    if (rec.state === 'rejected') {
      throw new ImgdistError('POLICY_REJECTED', `${rec.id} is rejected by this site's policy (${rec.reason ?? 'policy'}); approve cannot override that: change policy in the config and reload (SIGHUP)`)
    }
    // listed: policy has not been asked yet, and the approval recorded here is what it will see
    const already = rec.approvedSha512 === rec.entry.sha512 || !['listed', 'awaiting-approval'].includes(rec.state)
    await this.deps.store.put(Object.assign(rec, { approvedSha512: rec.entry.sha512 }))
    this.kick()
    return already ? `${rec.id} needs no approval (it is ${rec.state}); nothing to do` : `approved ${rec.id}`
  }

  async retry (rec: ImageRecord): Promise<string> {
    if (rec.state !== 'failed') throw new ImgdistError('NOT_FAILED', `${rec.id} has not failed (it is ${rec.state}); nothing to retry`)
    await this.deps.store.put(Object.assign(rec, { nextAttemptAt: Date.now() }))
    this.kick()
    return `retrying ${rec.id} now`
  }

  /** Takes effect at once; the promise says whether it was also saved for the next start. */
  async pause (): Promise<void> {
    if (!this.paused) this.pausedAt = new Date().toISOString()
    this.paused = true
    this.deps.swarm.pauseAll()
    await this.#savePaused(true)
  }

  async resume (): Promise<void> {
    this.paused = false
    delete this.pausedAt
    this.deps.swarm.resumeAll()
    this.kick()
    await this.#savePaused(false)
  }

  async #savePaused (paused: boolean): Promise<void> {
    try {
      await this.deps.settings.batch([
        { type: 'put', key: PAUSED_KEY, value: paused },
        paused && this.pausedAt !== undefined ? { type: 'put', key: PAUSED_AT_KEY, value: this.pausedAt } : { type: 'del', key: PAUSED_AT_KEY }
      ])
    } catch (err) {
      throw new ImgdistError('IO_ERROR', `${paused ? 'paused' : 'resumed'}, but could not save it for the next start`, { cause: err })
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    for (const job of this.#jobs.values()) job.abort.abort()
    await Promise.all([...this.#jobs.values()].map(async (j) => { await j.done.catch(() => {}) }))
    await this.#ticking
  }
}
