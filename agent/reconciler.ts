import type { Logger } from 'pino'
import { ImgdistError } from '../lib/errors.js'
import type { ResolvedConfig } from './config.js'
import type { Swarm } from '../swarm/swarm.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import { CatalogueExpiredError, type PipelineDeps } from './pipeline.js'
import type { JsonStore } from './db.js'
import { syncCatalogue, type SyncDeps } from './catalogue-sync.js'
import { JobRunner } from './job-runner.js'
import { ListingRefresh } from './listing-refresh.js'
import { AddedTargets, addedTargets } from './added-targets.js'
import type { Catalogue } from './catalogue.js'
import type { CataloguePoller } from './poller.js'
import { decide } from './policy.js'
import { Retirement } from './retirement.js'
import { loadPause, savePause } from './saved-pause.js'
import { interruptedStep, retryLabel, retryStep, type RetryStep } from './retry-step.js'
import { recordKey, supersede, type ImageRecord, type StateStore } from './state-store.js'
import type { Target } from './targets/target.js'

/**
 * Drives every image through DESIGN.md §4: catalogue → policy → pipeline → registered → retired.
 * One tick at a time; long steps run as per-image jobs (JobRunner), at most
 * `maxConcurrentDownloads` in the download phase. Failures go to `failed` with a backoff and come
 * back to the step that failed where that is safe (retry-step.ts), else to `approved`.
 */

/** An approved image of a catalogue that is not in force (expired, not yet accepted) waits with this reason. */
const HELD_REASON = 'waiting for a current catalogue (the accepted index expired or none is accepted yet)'

export class Reconciler {
  paused = false
  /** when the operator paused (RFC 3339), if paused; undefined for a pause saved by an older agent */
  pausedAt?: string
  #ticking?: Promise<void>
  #again = false
  #timer?: NodeJS.Timeout
  #closed = false
  cfg: ResolvedConfig
  readonly #retirement: Retirement
  readonly #refresh: ListingRefresh
  readonly #added: AddedTargets
  readonly #jobs: JobRunner
  readonly #sync: SyncDeps
  /** images the last stop interrupted mid-step, by record key: the step a job resumes them at (start()) */
  readonly #interrupted = new Map<string, RetryStep>()

  constructor (cfg: ResolvedConfig, private readonly deps: {
    store: StateStore, swarm: Swarm, targets: Target[], pollers: CataloguePoller[], log: Logger, http: PipelineDeps['http'],
    /** where the operator's pause is kept, so that it outlasts a restart */
    settings: JsonStore
    /** how often a tick runs unasked; default a second, tests lengthen it to leave a step to close() */
    tickMs?: number
  }) {
    this.cfg = cfg
    this.#retirement = new Retirement({ store: deps.store, targets: deps.targets, log: deps.log, policy: () => this.cfg.policy })
    this.#refresh = new ListingRefresh({
      store: deps.store, targets: deps.targets, log: deps.log, backoff: () => ({ initialMs: this.cfg.retryInitialMs, maxMs: this.cfg.retryMaxMs })
    })
    this.#added = new AddedTargets({
      store: deps.store, targets: deps.targets, log: deps.log, policy: () => this.cfg.policy,
      register: (rec) => { this.#jobs.start(rec, this.#catalogueOf(rec), 'registering') },
      download: async (rec) => { await this.#startOrHold(rec) }
    })
    this.#jobs = new JobRunner({
      store: deps.store, swarm: deps.swarm, targets: deps.targets, log: deps.log, http: deps.http,
      cfg: () => this.cfg, paused: () => this.paused, inForce: (c) => this.#catalogueInForce(c), kick: () => { this.kick() }
    })
    this.#sync = { store: deps.store, log: deps.log, replace: async (old, next) => { await this.#replace(old, next) } }
  }

  /**
   * After a crash or restart: an image stopped in its verification or registration resumes there
   * (retry-step.ts interruptedStep: a multi-GB image is not read twice more for a restart during
   * a long Glance upload); any other unfinished step goes back to `approved` (pieces on disk are kept).
   */
  async start (): Promise<void> {
    const { store } = this.deps
    // An operator who paused (a maintenance window, a full disk) expects a restart or a reboot
    // not to undo it.
    const saved = await loadPause(this.deps.settings)
    if (saved.paused) {
      this.paused = true
      if (saved.pausedAt !== undefined) this.pausedAt = saved.pausedAt
      this.deps.log.info('paused since before this start: downloads wait for `imgdist-agent resume`')
    }
    for (const rec of store.all()) {
      if (rec.state !== 'downloading' && rec.state !== 'verifying' && rec.state !== 'registering') continue
      const step = interruptedStep(rec)
      if (step === undefined) { await store.transition(rec, 'approved', { reason: `resumed after restart (was ${rec.state})` }); continue }
      this.#interrupted.set(recordKey(rec.catalogue, rec.id), step)
      // shown until a job takes it up: at once, or once downloads are resumed and the catalogue is in force
      await store.put(Object.assign(rec, { reason: `interrupted by the last stop; resumes at ${step}` }))
    }
    this.#logUnsubscribed()
    await Promise.all(store.all().filter((r) => r.state === 'registered' && r.cached && this.subscribed(r.catalogue)).map(async (r) => { await this.#jobs.seed(r) }))
    this.#timer = setInterval(() => { this.kick() }, this.deps.tickMs ?? 1000)
    this.kick()
  }

  get verificationFailures (): number { return this.#jobs.verificationFailures }

  handleOf (rec: ImageRecord): TorrentHandle | undefined { return this.#jobs.handleOf(rec) }

  /**
   * Resolves once no tick is running or queued and every job they started has begun its download
   * or ended: the agent builds its API only then, so as not to hold up its first downloads.
   */
  async idle (): Promise<void> {
    while (this.#ticking !== undefined) await this.#ticking
    await this.#jobs.begun()
  }

  /** Runs a tick soon; ticks never overlap, and a kick during a tick runs one more after it. */
  kick (): void {
    if (this.#closed) return
    if (this.#ticking !== undefined) { this.#again = true; return }
    this.#ticking = this.#tick().catch((err) => { this.deps.log.error({ err: String(err) }, 'reconcile tick failed') })
      .finally(() => { this.#ticking = undefined; if (this.#again) { this.#again = false; this.kick() } })
  }

  async #tick (): Promise<void> {
    for (const p of this.deps.pollers) if (p.current !== undefined) await syncCatalogue(p.current, this.#sync)
    const now = Date.now()
    for (const rec of this.deps.store.all()) {
      if (this.#closed) return
      await this.#step(rec, now)
    }
    await this.#jobs.updateProgress()
    await this.#jobs.evict()
  }

  /**
   * A new release (other bytes) of an id: whatever the old one was doing stops now, and the new
   * one goes through the pipeline at once. What the old one registered is kept on the new record
   * and retired after the grace (Retirement.retireSuperseded); its bytes are no longer wanted anywhere.
   */
  async #replace (old: ImageRecord, next: ImageRecord): Promise<void> {
    await this.#jobs.stop(old)
    await this.#jobs.drop(old, true)
    this.deps.log.info({ image: old.id, from: old.entry.version, to: next.entry.version, was: old.state }, 'replaced by a new release')
    await this.deps.store.put(supersede(old, next, Date.now()))
  }

  async #step (rec: ImageRecord, now: number): Promise<void> {
    const { store } = this.deps
    if (rec.superseded !== undefined) await this.#retirement.retireSuperseded(rec, now)
    if (rec.unwantedSince !== undefined) {
      if (rec.state !== 'retired') { await this.#jobs.stopSpreading(rec); await this.#retirement.retire(rec, now) }
      return
    }
    // No catalogue vouches for it any more, for better or worse (a revocation would not reach this
    // site): not seeded (start()), not started, retried or refreshed; not retired either, since
    // removing what users may run is not a config edit's side effect. Subscriptions change only
    // at a restart; the API shows why (views.ts UNSUBSCRIBED_REASON), the record is left as it is.
    if (!this.subscribed(rec.catalogue)) return
    // Policy (reloaded by SIGHUP at any time) is asked again at every step short of `registered`.
    // A registered image stays registered when policy turns against it: removing what users may
    // already run is the catalogue's call (revoke) or the operator's, not a config edit's side effect.
    // What it shows follows the catalogue's re-signed listing, under a catalogue still in force.
    if (rec.state === 'registered' && !this.#jobs.running(rec) && this.#catalogueInForce(rec.catalogue)) {
      await this.#refresh.refresh(rec, now)
      if (!this.paused) await this.#added.check(rec)
    }
    if (rec.state === 'registered' || rec.state === 'retired') return
    const d = decide(this.cfg.policy, rec.catalogue, rec.entry, rec.approvedSha512 === rec.entry.sha512)
    if (this.#jobs.running(rec)) {
      if (d.verdict !== 'approved') await this.#withdraw(rec, d)
      else if (!this.#catalogueInForce(rec.catalogue)) await this.#jobs.stop(rec, new CatalogueExpiredError(rec.catalogue))
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
          const retry = retryStep(rec)
          if (retry !== undefined) {
            // the job moves the record to that step once it has looked at the file (pipeline.ts)
            this.#jobs.start(rec, this.#catalogueOf(rec), retry)
          } else {
            await store.transition(rec, 'approved', { reason: retryLabel(rec) })
            await this.#startOrHold(rec)
          }
        }
        break
      case 'verifying': case 'registering': {
        // With no job, only an image the last stop interrupted (start()): resumed at its step by a
        // job as a retry would be, once the catalogue is in force and downloads are not paused.
        const key = recordKey(rec.catalogue, rec.id)
        const step = this.#interrupted.get(key)
        if (d.verdict !== 'approved') {
          this.#interrupted.delete(key)
          await this.#withdraw(rec, d)
        } else if (step === undefined) {
          await store.transition(rec, 'approved', { reason: `no job was ${rec.state} it: from the start` })
          await this.#startOrHold(rec)
        } else if (!this.paused && this.#catalogueInForce(rec.catalogue)) {
          this.#interrupted.delete(key)
          this.#jobs.start(rec, this.#catalogueOf(rec), step)
        }
        break
      }
      default: break
    }
  }

  /**
   * Policy no longer approves an image that is in flight or failed: its job stops, and a
   * rejected image's bytes leave the swarm and the disk (one waiting for approval keeps them).
   */
  async #withdraw (rec: ImageRecord, d: { verdict: 'rejected' | 'awaiting-approval', reason: string }): Promise<void> {
    await this.#jobs.stop(rec)
    // the job may have registered it before it saw the abort
    if (rec.state === 'registered' || !this.deps.store.isCurrent(rec)) return
    const rejected = d.verdict === 'rejected'
    await this.#jobs.drop(rec, rejected)
    this.deps.log.info({ image: rec.id, was: rec.state, verdict: d.verdict, reason: d.reason }, 'policy no longer approves an image in progress; stopped')
    await this.deps.store.transition(rec, d.verdict, { reason: d.reason, ...(rejected ? { progress: 0, cached: false } : {}) })
  }

  /**
   * A catalogue whose poller has no accepted, unexpired index is not acted on (DESIGN.md §3:
   * freeze); nor is one the config no longer subscribes to.
   */
  #catalogueInForce (catalogue: string): boolean {
    return this.deps.pollers.find((x) => x.name === catalogue)?.current !== undefined
  }

  /** Whether the config subscribes to the catalogue (subscriptions change only at a restart). */
  subscribed (catalogue: string): boolean {
    return this.deps.pollers.some((p) => p.name === catalogue)
  }

  /** Once at start: the catalogues whose images stay as they are because no subscription names them now. */
  #logUnsubscribed (): void {
    const left = new Map<string, number>()
    for (const r of this.deps.store.all()) if (r.state !== 'retired' && !this.subscribed(r.catalogue)) left.set(r.catalogue, (left.get(r.catalogue) ?? 0) + 1)
    for (const [catalogue, images] of left) {
      this.deps.log.warn({ catalogue, images }, 'images of a catalogue that is no longer subscribed: kept in their targets, not seeded, downloaded or refreshed until it is subscribed again')
    }
  }

  #catalogueOf (rec: ImageRecord): Catalogue | undefined {
    return this.deps.pollers.find((p) => p.name === rec.catalogue)?.current
  }

  async #startOrHold (rec: ImageRecord): Promise<void> {
    if (this.#catalogueInForce(rec.catalogue)) { this.#jobs.start(rec, this.#catalogueOf(rec)); return }
    if (rec.reason !== HELD_REASON) await this.deps.store.put(Object.assign(rec, { reason: HELD_REASON }))
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
    // a registered image waits for it only to go to targets added since (AddedTargets)
    const added = rec.state === 'registered' && rec.approvedSha512 !== rec.entry.sha512 ? addedTargets(rec, this.deps.targets).map((t) => t.name) : []
    await this.deps.store.put(Object.assign(rec, { approvedSha512: rec.entry.sha512 }))
    this.kick()
    if (added.length > 0) return `approved ${rec.id} for ${added.join(', ')} (added to the config since it was registered)`
    return already ? `${rec.id} needs no approval (it is ${rec.state}); nothing to do` : `approved ${rec.id}`
  }

  async retry (rec: ImageRecord): Promise<string> {
    if (rec.state !== 'failed') throw new ImgdistError('NOT_FAILED', `${rec.id} has not failed (it is ${rec.state}); nothing to retry`)
    await this.deps.store.put(Object.assign(rec, { nextAttemptAt: Date.now() }))
    this.kick()
    return `retrying ${rec.id} now`
  }

  /**
   * Takes effect at once; the promise says whether it was also saved for the next start, and
   * resolves to false when the agent was paused already. The state is saved again all the same,
   * so that repeating a pause whose save failed is how to retry it.
   */
  async pause (): Promise<boolean> {
    const changed = !this.paused
    if (changed) this.pausedAt = new Date().toISOString()
    this.paused = true
    this.deps.swarm.pauseAll()
    await savePause(this.deps.settings, true, this.pausedAt)
    return changed
  }

  /** As pause: false when the agent was not paused. */
  async resume (): Promise<boolean> {
    const changed = this.paused
    this.paused = false
    delete this.pausedAt
    this.deps.swarm.resumeAll()
    this.kick()
    await savePause(this.deps.settings, false, undefined)
    return changed
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.#jobs.close()
    await this.#ticking
    // last: a job that ends now may leave its torrent seeding, and a tick may still save counts
    await this.#jobs.stopSeeding()
  }
}
