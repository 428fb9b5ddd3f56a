import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { ConfigError, ImgdistError, toImgdistError } from '../lib/errors.js'
import { changedFields } from '../lib/changed-fields.js'
import { joinHostPort } from '../lib/host-port.js'
import { listenError } from '../lib/listen-error.js'
import type { ActionResult, AgentStatus, ReloadStatus, TargetView } from './api.js'
import type { ResolvedConfig } from './config.js'
import { reserveAddress, type AddressReservation } from './address-reservation.js'
import { openDb, type AgentDb } from './db.js'
import { Swarm } from '../swarm/swarm.js'
import { makeDispatcher } from './http-fetch.js'
import { CataloguePoller } from './poller.js'
import { Reconciler } from './reconciler.js'
import { Reporter } from './reporter.js'
import { StateStore, type ImageRecord } from './state-store.js'
import { reloadTargets } from './target-reload.js'
import { createTarget } from './targets/create-target.js'
import type { Target } from './targets/target.js'
import { TrustStore } from './trust-store.js'
import { imageView, type ImageView } from './views.js'

/** Resolves when `p` settles or after `ms`, whichever comes first. */
async function settledOrTimeout (p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
  await Promise.race([p.catch(() => {}), late])
  clearTimeout(timer)
}

export const AGENT_VERSION = '0.1.0'
const RECOVER_TIMEOUT_MS = 60_000
/**
 * The first catalogue round (fetch, verify, start the downloads) runs before the HTTP API is
 * built, for up to this long. The API (fastify, prom-client; loaded only then) is about a fifth of
 * the agent's start-up CPU, and on a loaded host every agent that starts at once waited for it
 * before its first piece request. An unreachable catalogue delays the API by this much at most.
 */
const API_HEAD_START_MS = 1000

/**
 * The composition root: state, pollers, swarm, targets, reconciler, API, reporter. `close()` is
 * idempotent and drains: jobs stop, seeding torrents leave the swarm and their last uploads are
 * saved (reconciler), the swarm closes its sockets, LevelDB is closed last.
 */
export class ImgdistAgent {
  cfg: ResolvedConfig
  readonly log: Logger
  #db?: AgentDb
  #store?: StateStore
  #swarm?: Swarm
  #targets: Target[] = []
  #pollers: CataloguePoller[] = []
  #reconciler?: Reconciler
  #api?: FastifyInstance
  /** the API's address, held from the start until the API listens on it */
  #apiReservation?: AddressReservation
  #reporter?: Reporter
  #http: Dispatcher = makeDispatcher()
  #closing?: Promise<void>
  readonly #recoverErrors = new Map<string, { code: string, message: string }>()
  #lastReload?: ReloadStatus
  readonly startedAt = new Date().toISOString()
  apiAddress = ''

  readonly #env: Record<string, string | undefined>

  constructor (cfg: ResolvedConfig, log: Logger, opts: { env?: Record<string, string | undefined> } = {}) {
    this.cfg = cfg
    this.log = log
    this.#env = opts.env ?? {}
  }

  async start (): Promise<void> {
    const cfg = this.cfg
    const apiAddress = joinHostPort(cfg.apiHost, cfg.apiPort)
    this.#apiReservation = await reserveAddress(cfg.apiHost, cfg.apiPort).catch((err: unknown) => { throw listenError(err, apiAddress, 'api.listen') })
    this.#db = await openDb(cfg.dataDir)
    this.#store = new StateStore(this.#db.sub('images'))
    await this.#store.load()
    const trust = new TrustStore(this.#db.sub('trust'))
    this.#pollers = cfg.subscriptions.map((s) => new CataloguePoller(s, { log: this.log, trust, http: this.#http }))
    for (const p of this.#pollers) await p.init()
    const names = new Set<string>()
    for (const p of this.#pollers) {
      if (names.has(p.name)) throw new ConfigError(`two subscriptions pin a root for the same catalogue "${p.name}"`)
      names.add(p.name)
    }
    for (const t of cfg.targets) this.#targets.push(await createTarget(t, { log: this.log.child({ target: t.name }), dataDir: cfg.dataDir, site: cfg.site, env: this.#env }))
    for (const t of this.#targets) await this.#recover(t)
    this.#swarm = new Swarm({ dataDir: cfg.dataDir, ...cfg.swarm }, this.log.child({ part: 'swarm' }), this.#http)
    const torrentPort = await this.#swarm.listening().catch((err: unknown) => { throw listenError(err, `TCP port ${cfg.swarm.torrentPort}`, 'swarm.torrentPort') })
    this.#reconciler = new Reconciler(cfg, { store: this.#store, swarm: this.#swarm, targets: this.#targets, pollers: this.#pollers, log: this.log, http: this.#http, settings: this.#db.sub('settings') })
    await this.#reconciler.start()
    const firstRounds = this.#pollers.map(async (p) => {
      p.on('catalogue', () => { this.#reconciler?.kick() })
      p.on('expired', () => { this.#reconciler?.kick() })
      await p.start()
    })
    const reconciler = this.#reconciler
    await settledOrTimeout(Promise.allSettled(firstRounds).then(async () => { await reconciler.idle() }), API_HEAD_START_MS)
    if (this.#closing !== undefined) return
    const [{ createApi }, { createMetrics }] = await Promise.all([import('./api.js'), import('./metrics.js')])
    this.#api = await createApi({
      status: () => this.status(),
      images: () => this.images(),
      peers: () => this.#swarm?.peers() ?? [],
      approve: async (id) => await this.#act(id, async (r) => await this.#reconciler?.approve(r)),
      retry: async (id) => await this.#act(id, async (r) => await this.#reconciler?.retry(r)),
      pause: async () => {
        const changed = await this.#reconciler?.pause() ?? false
        this.log.info(changed ? 'paused' : 'pause asked while paused already: nothing changed')
        const pausedAt = this.#reconciler?.pausedAt
        return { changed, ...(pausedAt !== undefined ? { pausedAt } : {}) }
      },
      resume: async () => {
        const changed = await this.#reconciler?.resume() ?? false
        this.log.info(changed ? 'resumed' : 'resume asked while not paused: nothing changed')
        return { changed }
      },
      metrics: createMetrics({
        images: () => this.images(),
        polls: () => this.#pollers.map((p) => p.status),
        peers: () => this.#swarm?.peers().filter((p) => p.type !== 'webSeed').length ?? 0,
        webSeeds: () => this.#swarm?.peers().filter((p) => p.type === 'webSeed').length ?? 0,
        ...(cfg.report !== undefined ? { lastReport: () => this.#reporter?.lastSent } : {}),
        verificationFailures: () => this.#reconciler?.verificationFailures ?? 0,
        paused: () => this.#reconciler?.paused ?? false,
        targets: () => this.#targets.map((t) => t.name),
        ...(cfg.swarm.dht.enabled ? { dhtNodes: () => this.#swarm?.dht?.nodes } : {})
      })
    })
    // close() may have run while the API was being built: it found no API to close
    if (this.#closing !== undefined) { await this.#api.close(); return }
    await this.#apiReservation?.release()
    this.apiAddress = await this.#api.listen({ host: cfg.apiHost, port: cfg.apiPort })
      .catch((err: unknown) => { throw listenError(err, apiAddress, 'api.listen') })
    if (cfg.report !== undefined) {
      this.#reporter = new Reporter({
        ...cfg.report, site: cfg.site, agentVersion: AGENT_VERSION, http: this.#http, log: this.log,
        snapshot: () => ({ polls: this.#pollers.map((p) => p.status), images: this.images() })
      })
      await this.#reporter.start()
    }
    // startedInMs: since the process began (performance's time origin), module loading included
    this.log.info({ api: this.apiAddress, torrentPort, catalogues: this.#pollers.map((p) => p.name), startedInMs: Math.round(performance.now()) }, 'imgdist-agent started')
  }

  /**
   * Start-up clean-up and check of a target (Glance images a crash left `queued`; a directory
   * the agent may not write). Not fatal: a target that is down, refuses the credentials or
   * cannot be written must not turn into a systemd restart loop; its images fail with the
   * target's error and are retried, and register() cleans up per image anyway.
   * Awaited (bounded) so it cannot race with the first registration.
   */
  async #recover (t: Target): Promise<void> {
    if (t.recover === undefined) return
    try {
      await t.recover(AbortSignal.timeout(RECOVER_TIMEOUT_MS))
      this.#recoverErrors.delete(t.name)
    } catch (err) {
      const e = toImgdistError(err)
      this.#recoverErrors.set(t.name, { code: e.code, message: e.message })
      this.log.warn({ target: t.name, code: e.code, err: e.message }, 'target start-up check failed; running on (its images fail and are retried until it is fixed)')
    }
  }

  targets (): TargetView[] {
    return this.#targets.map((t) => {
      const recoverError = this.#recoverErrors.get(t.name)
      return { ...(t.status?.() ?? {}), name: t.name, type: t.type, ...(recoverError !== undefined ? { recoverError } : {}) }
    })
  }

  /**
   * An operator action on every record of `id` (one per catalogue that lists it). It fails only
   * when it could be done to none of them; otherwise `messages` says what happened to each.
   */
  async #act (id: string, fn: (r: NonNullable<ReturnType<StateStore['get']>>) => Promise<string | undefined>): Promise<ActionResult> {
    const recs = this.#store?.findById(id) ?? []
    const messages: string[] = []
    const refused: ImgdistError[] = []
    for (const r of recs) {
      try { messages.push(await fn(r) ?? `${r.id}: agent stopping`) } catch (err) {
        if (!(err instanceof ImgdistError)) throw err
        refused.push(err)
        messages.push(`${r.catalogue}: ${err.code}: ${err.message}`)
      }
    }
    if (recs.length > 0 && refused.length === recs.length) throw refused[0] as ImgdistError
    return { images: recs.map((r) => this.#view(r)), messages }
  }

  #view (rec: ImageRecord): ImageView {
    return imageView(rec, this.#reconciler?.handleOf(rec), this.#reconciler?.subscribed(rec.catalogue) ?? false)
  }

  images (): ImageView[] {
    return (this.#store?.all() ?? []).map((r) => this.#view(r))
      .sort((a, b) => `${a.catalogue}/${a.id}`.localeCompare(`${b.catalogue}/${b.id}`))
  }

  status (): AgentStatus {
    const images: Record<string, number> = {}
    for (const i of this.images()) images[i.state] = (images[i.state] ?? 0) + 1
    const sw = this.#swarm
    const sources = sw?.peers() ?? []
    const webSeeds = sources.filter((p) => p.type === 'webSeed').length
    const rep = this.#reporter
    return {
      site: this.cfg.site, agentVersion: AGENT_VERSION, paused: this.#reconciler?.paused ?? false, startedAt: this.startedAt,
      ...(this.#reconciler?.pausedAt !== undefined ? { pausedAt: this.#reconciler.pausedAt } : {}),
      torrentPort: sw?.port ?? 0, ...(sw?.dht !== undefined ? { dht: sw.dht } : {}), catalogues: this.#pollers.map((p) => ({ ...p.status })), images,
      downRate: sw?.downloadSpeed ?? 0, upRate: sw?.uploadSpeed ?? 0, peers: sources.length - webSeeds, webSeeds,
      ...(this.cfg.report !== undefined
        ? { report: { url: this.cfg.report.url, ...(rep?.lastSent !== undefined ? { lastSent: rep.lastSent } : {}), ...(rep?.lastError !== undefined ? { lastError: rep.lastError, ...(rep.lastErrorAt !== undefined ? { lastErrorAt: rep.lastErrorAt } : {}) } : {}) } }
        : {}),
      targets: this.targets(),
      ...(this.#lastReload !== undefined ? { reload: this.#lastReload } : {})
    }
  }

  /**
   * SIGHUP: policy, retry, cache and log settings and the targets' image settings (Glance:
   * nameTemplate, properties, tags, visibility) apply at once; other changes are named as needing
   * a restart. A target entry its target refuses throws (ConfigError) before anything is applied.
   */
  reload (next: ResolvedConfig): string[] {
    const startOnly = ({ dataDir, api, swarm, subscriptions, report, site }: ResolvedConfig): Record<string, unknown> => ({ dataDir, api, swarm, subscriptions, report, site })
    const needRestart = changedFields(startOnly(this.cfg), startOnly(next))
    // this.cfg.targets stays the config the targets were built with
    const targets = reloadTargets(this.#targets, this.cfg.targets, next.targets)
    needRestart.push(...targets.restart)
    targets.apply()
    this.cfg = { ...this.cfg, policy: next.policy, cache: next.cache, retryInitialMs: next.retryInitialMs, retryMaxMs: next.retryMaxMs, logLevel: next.logLevel }
    this.log.level = next.logLevel
    // a changed target setting reaches the images registered before at this tick (ListingRefresh)
    if (this.#reconciler !== undefined) { this.#reconciler.cfg = this.cfg; this.#reconciler.kick() }
    this.log.info({ needRestart, ...(targets.changed.length > 0 ? { targetSettings: targets.changed } : {}) }, 'config reloaded')
    this.#lastReload = { at: new Date().toISOString(), needRestart }
    return needRestart
  }

  /** SIGHUP with a file that does not validate (or that reload() refused): nothing of it applies. */
  reloadRefused (err: unknown): void {
    const e = toImgdistError(err)
    this.log.error({ code: e.code, err: e.message }, 'config reload refused; keeping the running config')
    this.#lastReload = { at: new Date().toISOString(), needRestart: this.#lastReload?.needRestart ?? [], error: { code: e.code, message: e.message } }
  }

  close (): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    this.log.info('stopping')
    await this.#apiReservation?.release()
    await this.#api?.close()
    await this.#reporter?.close()
    await Promise.all(this.#pollers.map(async (p) => { await p.close() }))
    await this.#reconciler?.close()
    await this.#swarm?.close()
    await Promise.all(this.#targets.map(async (t) => { await t.close() }))
    await this.#db?.close()
    await this.#http.close()
    this.log.info('stopped')
  }
}
