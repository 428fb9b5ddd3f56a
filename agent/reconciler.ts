import type { Logger } from 'pino'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import { imageExpired } from '../lib/trust.js'
import { backoffMs } from '../lib/backoff.js'
import { chooseEvictions } from './cache.js'
import type { ResolvedConfig } from './config.js'
import type { Swarm } from '../swarm/swarm.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import { obtainTorrent, runPipeline, targetImage, type PipelineDeps } from './pipeline.js'
import type { JsonStore } from './db.js'
import type { Catalogue, CataloguePoller } from './poller.js'
import { decide, retireDue } from './policy.js'
import { newRecord, recordKey, type ImageRecord, type StateStore } from './state-store.js'
import type { Target } from './targets/target.js'

/**
 * Drives every image through DESIGN.md §4: catalogue → policy → pipeline → registered → retired.
 * One tick at a time; long steps run as per-image jobs, at most `maxConcurrentDownloads` in the
 * download phase. Failures go to `failed` with a backoff and come back to `approved`.
 */

interface Job {
  abort: AbortController
  done: Promise<void>
  /** settles when the download has begun (the swarm has the torrent) or the job ended before that */
  begun: Promise<void>
  downloading: boolean
  handle?: TorrentHandle
  base: { peers: number, web: number, up: number }
}

const PAUSED_KEY = 'paused'

export class Reconciler {
  paused = false
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

  constructor (cfg: ResolvedConfig, private readonly deps: {
    store: StateStore, swarm: Swarm, targets: Target[], pollers: CataloguePoller[], log: Logger, http: PipelineDeps['http'],
    /** where the operator's pause is kept, so that it outlasts a restart */
    settings: JsonStore
  }) { this.cfg = cfg }

  /** After a crash or restart: unfinished steps go back to `approved` (pieces on disk are kept). */
  async start (): Promise<void> {
    const { store } = this.deps
    // An operator who paused (a maintenance window, a full disk) expects a restart or a reboot
    // not to undo it.
    if (await this.deps.settings.get(PAUSED_KEY) === true) {
      this.paused = true
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
      let rec = store.get(cat.name, e.id)
      if (rec === undefined || (rec.entry.sha512 !== e.sha512 && rec.state !== 'registered')) {
        rec = newRecord(cat.name, e, idx.version, cat.signers)
        await store.put(rec)
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
      } else if (why === undefined && rec.unwantedSince !== undefined && rec.state !== 'retired') {
        delete rec.unwantedSince; delete rec.unwantedReason
        await store.put(rec)
      }
    }
  }

  async #step (rec: ImageRecord, now: number): Promise<void> {
    const { store } = this.deps
    const key = recordKey(rec.catalogue, rec.id)
    if (rec.unwantedSince !== undefined) {
      if (rec.state !== 'retired') await this.#retire(rec, now)
      return
    }
    if (this.#jobs.has(key)) return
    switch (rec.state) {
      case 'listed': case 'rejected': case 'awaiting-approval': case 'approved': {
        const d = decide(this.cfg.policy, rec.catalogue, rec.entry, rec.approvedSha512 === rec.entry.sha512)
        const keep = rec.state === 'approved' && d.verdict === 'approved'
        if (!keep && (d.verdict !== rec.state || rec.reason !== d.reason)) await store.transition(rec, d.verdict, { reason: d.reason })
        if (rec.state === 'approved') this.#maybeStart(rec)
        break
      }
      case 'failed':
        if (rec.nextAttemptAt !== undefined && now >= rec.nextAttemptAt && !this.paused) {
          await store.transition(rec, 'approved', { reason: `retry ${rec.retries}` })
          this.#maybeStart(rec)
        }
        break
      default: break
    }
  }

  #maybeStart (rec: ImageRecord): void {
    if (this.paused || this.#closed) return
    const downloading = [...this.#jobs.values()].filter((j) => j.downloading).length
    if (downloading >= this.cfg.swarm.maxConcurrentDownloads) return
    const key = recordKey(rec.catalogue, rec.id)
    const cat = this.deps.pollers.find((p) => p.name === rec.catalogue)?.current
    let begin = (): void => {}
    const begun = new Promise<void>((resolve) => { begin = resolve })
    const job: Job = { abort: new AbortController(), downloading: true, done: Promise.resolve(), begun, base: { peers: rec.bytesFromPeers, web: rec.bytesFromWebSeeds, up: rec.bytesUploaded } }
    this.#jobs.set(key, job)
    const deps: PipelineDeps = { ...this.deps, dataDir: this.cfg.dataDir, onDownloadEnd: () => { job.downloading = false; this.kick() } }
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
        const e = toImgdistError(err)
        if (e.code === 'ABORTED') return
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
    for (const [key, job] of this.#jobs) {
      const rec = this.deps.store.all().find((r) => recordKey(r.catalogue, r.id) === key)
      if (rec === undefined || job.handle === undefined) continue
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

  async #retire (rec: ImageRecord, now: number): Promise<void> {
    const key = recordKey(rec.catalogue, rec.id)
    const job = this.#jobs.get(key)
    if (job !== undefined) { job.abort.abort(); await job.done.catch(() => {}) }
    const registered = Object.values(rec.targets).some((t) => t.state === 'registered')
    // A revoked or withdrawn image must stop spreading at once, whatever the grace for its registrations.
    if (this.#seeding.has(key) || rec.cached) {
      this.#seeding.delete(key)
      await this.deps.swarm.remove(rec.entry.infoHash, true)
      rec.cached = false
    }
    if (registered && !retireDue(this.cfg.policy, rec.unwantedSince ?? now, now)) { await this.deps.store.put(rec); return }
    const action = this.cfg.policy.retire
    for (const t of this.deps.targets) {
      const ts = rec.targets[t.name]
      if (ts?.state !== 'registered' || ts.ref === undefined) continue
      try {
        await t.retire(targetImage(rec), { ref: ts.ref, adopted: ts.adopted ?? false }, action)
        rec.targets[t.name] = { ...ts, state: 'retired', at: new Date().toISOString() }
      } catch (err) {
        const e = toImgdistError(err)
        rec.targets[t.name] = { ...ts, error: { code: e.code, message: e.message }, at: new Date().toISOString() }
        await this.deps.store.put(rec)
        return // tried again next tick
      }
    }
    this.deps.log.info({ image: rec.id, reason: rec.unwantedReason, action }, 'retired')
    await this.deps.store.transition(rec, 'retired', { reason: `${rec.unwantedReason ?? 'unwanted'} (retire: ${action})` })
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
    const already = rec.approvedSha512 === rec.entry.sha512 || rec.state !== 'awaiting-approval'
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
    this.paused = true
    this.deps.swarm.pauseAll()
    await this.#savePaused(true)
  }

  async resume (): Promise<void> {
    this.paused = false
    this.deps.swarm.resumeAll()
    this.kick()
    await this.#savePaused(false)
  }

  async #savePaused (paused: boolean): Promise<void> {
    try { await this.deps.settings.put(PAUSED_KEY, paused) } catch (err) {
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
