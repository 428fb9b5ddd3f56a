import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { MAX_INDEX_BYTES } from '../lib/document.js'
import { MAX_TIMER_MS } from '../lib/duration-schema.js'
import { rfc3339Millis } from '../lib/duration.js'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import { MAX_WAIT_SECONDS } from '../lib/held-get.js'
import type { RootDocument } from '../lib/schema.js'
import { assertNotExpired, catalogueExpires, catalogueExpiresMs } from '../lib/trust.js'
import type { Catalogue, PollStatus } from './catalogue.js'
import { restoreCatalogue } from './catalogue-restore.js'
import type { ResolvedConfig } from './config.js'
import { fetchBytes, RetryLaterError } from './http-fetch.js'
import { acceptFetchedIndex } from './index-accept.js'
import { walkRoots } from './root-walk.js'
import type { TrustStore } from './trust-store.js'

/**
 * One subscription: polls index.yaml (conditional GET, mirrors, backoff with jitter), walks root
 * rotations, and accepts per DESIGN.md §3. Any failure keeps the last good catalogue in force.
 */

/** The outcome of one round, which decides when the next starts. */
type Round = 'held' | 'fetched' | 'quick' | 'failed' | 'later'

/**
 * After an index server said it is restarting, failures to reach it are expected for this long:
 * logged at info, not counted as failed polls, not shown as the subscription's error.
 */
const RESTART_GRACE_MS = 60_000
/** Errors of reaching the server, which an answer from it disproves. */
const TRANSPORT_CODES = new Set(['NETWORK_ERROR', 'HTTP_ERROR'])

type Sub = ResolvedConfig['subscriptions'][number]

export class CataloguePoller extends EventEmitter {
  readonly sub: Sub
  name = ''
  current?: Catalogue
  #root?: RootDocument
  #etag?: string
  #timer?: NodeJS.Timeout
  #expiryTimer?: NodeJS.Timeout
  #failures = 0
  /** seconds the index server asked us to wait (503 + Retry-After), for a 'later' round */
  #retryAfter = 1
  #restartGraceUntil = 0
  #closed = false
  #polling?: Promise<Round>
  readonly status: PollStatus
  readonly #log: Logger
  readonly #trust: TrustStore
  readonly #http: Dispatcher
  readonly #now: () => Date
  readonly #abort = new AbortController()

  constructor (sub: Sub, deps: { log: Logger, trust: TrustStore, http: Dispatcher, now?: () => Date }) {
    super()
    this.sub = sub
    this.#log = deps.log
    this.#trust = deps.trust
    this.#http = deps.http
    this.#now = deps.now ?? (() => new Date())
    this.status = { name: sub.label, url: sub.url, rootVersion: 0, indexVersion: 0, pollErrors: 0, watching: false }
  }

  /** Loads the pinned root and the last accepted state (agent/catalogue-restore.ts). */
  async init (): Promise<void> {
    const r = await restoreCatalogue(this.sub, this.#trust, this.#now())
    this.#root = r.root
    this.name = r.root.signed.name
    this.status.name = this.name
    this.status.rootVersion = r.root.signed.version
    if (r.storedVersion !== undefined) this.status.indexVersion = r.storedVersion
    if (r.accepted !== undefined) this.#accept({ name: this.name, root: r.root, ...r.accepted, baseUrl: this.sub.url })
    if (r.refused !== undefined) this.#fail(r.refused)
    if (r.lapsedAt !== undefined) this.status.expires = r.lapsedAt
  }

  /** Starts polling. Resolves once the first round has settled, whether it got a catalogue or not. */
  async start (): Promise<void> {
    await new Promise<void>((resolve) => { this.#schedule(0, resolve) })
  }

  /** One round now (joins the running one); a held request may make it last up to the wait. */
  async pollNow (): Promise<void> {
    await this.#round()
  }

  #round (): Promise<Round> {
    this.#polling ??= this.#poll().finally(() => { this.#polling = undefined })
    return this.#polling
  }

  /** Seconds the server is asked to hold a conditional GET: up to the poll interval, within the server's cap. */
  get #waitSeconds (): number {
    return Math.min(MAX_WAIT_SECONDS, Math.max(1, Math.floor(this.sub.pollIntervalMs / 1000)))
  }

  #schedule (delay: number, settled?: () => void): void {
    if (this.#closed) { settled?.(); return }
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      void this.#round().then((round) => {
        settled?.()
        // A server that held the request, or just sent an index with its ETag, is watched again at
        // once; one that answered at once (an older server, a mirror, a cache) is polled at the interval.
        if (round === 'held' || (round === 'fetched' && this.sub.watch)) { this.#schedule(0); return }
        if (round === 'later') { this.#schedule(this.#retryAfter * 1000 * (1 + Math.random() * 0.5)); return }
        const base = this.sub.pollIntervalMs
        // Back off quickly on failure but never poll less often than configured.
        const next = this.#failures === 0 ? base : Math.min(base, 2000 * 2 ** Math.min(this.#failures, 10))
        this.#schedule(next * (0.8 + Math.random() * 0.4))
      })
    }, delay)
  }

  #fail (err: ImgdistError): void {
    this.status.error = { code: err.code, message: err.message }
    this.emit('error-status', this.status.error)
  }

  /**
   * An accepted index (or its root) that expires while the server has nothing newer (it answers
   * 304, or holds the request) is no longer in force, as after a restart: a freeze attack is
   * just that. The catalogue stops being usable until a current index is accepted.
   */
  #assertCurrentFresh (): void {
    const cur = this.current
    if (cur === undefined) return
    try {
      assertNotExpired(cur.root.signed, this.#now(), `trusted root v${cur.root.signed.version}`)
      assertNotExpired(cur.index.signed, this.#now(), `index v${cur.index.signed.version}`)
    } catch (err) {
      this.current = undefined
      clearTimeout(this.#expiryTimer)
      this.#log.warn({ catalogue: this.name, err: (err as Error).message }, 'the accepted catalogue expired; nothing is acted on until a current index is accepted')
      // jobs of this catalogue stop now, not at the reconciler's next tick
      this.emit('expired', this.name)
      throw err
    }
  }

  /** Puts a verified catalogue in force until it expires. */
  #accept (c: Catalogue): void {
    this.current = c
    this.status.expires = catalogueExpires(c.root.signed.expires, c.index.signed.expires)
    this.#armExpiry()
  }

  /** Whether the last accepted catalogue is past its expires (a poll's failure must not claim it is kept). */
  #lapsed (): boolean {
    const at = this.status.expires === undefined ? undefined : rfc3339Millis(this.status.expires)
    return at !== undefined && at <= this.#now().getTime()
  }

  /** Checks the expiry at the moment it falls, not only at the next answer (a held request lasts up to 50 s). */
  #armExpiry (): void {
    clearTimeout(this.#expiryTimer)
    const cur = this.current
    if (cur === undefined || this.#closed) return
    const at = catalogueExpiresMs(cur.root.signed.expires, cur.index.signed.expires)
    // a later expiry is checked again when this timer fires
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, at - this.#now().getTime()))
    this.#expiryTimer = setTimeout(() => {
      // not a poll: the next one (unconditional now) counts the refused index
      try { this.#assertCurrentFresh(); this.#armExpiry() } catch (err) { this.#fail(toImgdistError(err)) }
    }, ms)
    this.#expiryTimer.unref()
  }

  async #poll (): Promise<Round> {
    if (this.#closed) return 'failed'
    this.status.lastPoll = this.#now().toISOString()
    const urls = [this.sub.url, ...this.sub.mirrors.map((m) => m.endsWith('/') ? `${m}index.yaml` : m)]
    let lastErr: ImgdistError | undefined
    for (const url of urls) {
      try {
        // only the index server holds requests; mirrors are static copies
        const round = await this.#pollFrom(url, this.sub.watch && url === this.sub.url)
        this.#failures = 0
        this.status.lastSuccess = this.#now().toISOString()
        this.status.watching = round === 'held'
        return round
      } catch (err) {
        if (err instanceof RetryLaterError && url === this.sub.url && !this.#closed) return this.#later(err)
        lastErr = toImgdistError(err)
        if (lastErr.code !== 'NETWORK_ERROR' && lastErr.code !== 'HTTP_ERROR') break // a refused document: mirrors would only repeat it
      }
    }
    // close() aborts a held request: that is not a failed poll
    if (lastErr !== undefined && !this.#closed) {
      // backs off either way; a planned restart (docs/agent.md, "Watch") is not a failure to report
      this.#failures++
      const expected = Date.now() < this.#restartGraceUntil && TRANSPORT_CODES.has(lastErr.code)
      if (expected) {
        this.#log.info({ catalogue: this.name, code: lastErr.code, err: lastErr.message }, 'catalogue poll failed while the index server restarts; retrying')
      } else {
        this.status.pollErrors++
        const detail = { catalogue: this.name, code: lastErr.code, err: lastErr.message }
        if (this.#lapsed()) {
          this.#log.warn({ ...detail, expires: this.status.expires }, 'catalogue poll failed; the accepted catalogue has expired: nothing new is acted on until a current index is accepted')
        } else if (this.current === undefined) {
          this.#log.warn(detail, 'catalogue poll failed; no catalogue is in force yet: nothing is acted on until an index is accepted')
        } else {
          this.#log.warn(detail, 'catalogue poll failed; keeping the last good catalogue')
        }
        this.#fail(lastErr)
      }
    }
    this.status.watching = false
    return 'failed'
  }

  /**
   * The index server is restarting (it answers held GETs so at shutdown) or otherwise down on
   * purpose: wait as asked, without a failure, a backoff or a round on the mirrors (which would
   * leave the agent polling at the interval instead of watching again).
   */
  #later (err: RetryLaterError): Round {
    this.#retryAfter = err.retryAfter
    this.#restartGraceUntil = Date.now() + RESTART_GRACE_MS
    this.status.watching = false
    this.#log.info({ catalogue: this.name, retryAfter: err.retryAfter }, 'index server unavailable for now (HTTP 503); retrying')
    return 'later'
  }

  async #pollFrom (url: string, watch: boolean): Promise<Round> {
    const signal = this.#abort.signal
    let root = await this.#walkRoots(url, signal, this.#root as RootDocument)
    // The server answered: an error of not reaching it is over, though a held request may not
    // end for up to 50 s (status showed WATCH yes with a stale ECONNREFUSED that long).
    if (this.status.error !== undefined && TRANSPORT_CODES.has(this.status.error.code)) delete this.status.error
    const conditional = this.#etag !== undefined && this.current !== undefined && root === this.#root
    const wait = watch && conditional ? this.#waitSeconds : undefined
    const started = performance.now()
    this.status.watching = wait !== undefined
    const res = await fetchBytes(this.#http, url, {
      maxBytes: MAX_INDEX_BYTES, signal, ...(conditional ? { etag: this.#etag } : {}), ...(wait !== undefined ? { waitSeconds: wait } : {})
    })
    if (res.status === 304) {
      // the request began under an index that has expired since (the timer took it out of force)
      if (this.current === undefined) return 'quick'
      this.#assertCurrentFresh()
      delete this.status.error
      // Judged by the clock, not by a header a cache could replay: a server that did not hold
      // the request must not be asked again at once, or the agent would poll in a tight loop.
      // The header only says when a server holds for less than we asked (its own cap).
      const held = Math.min(wait ?? 0, res.waitApplied ?? Infinity)
      return held > 0 && performance.now() - started >= held * 500 ? 'held' : 'quick'
    }
    if (res.status === 404) throw new ImgdistError('HTTP_ERROR', `GET ${url}: HTTP 404`)
    const { root: inForce, acc } = await acceptFetchedIndex({
      name: this.name, trust: this.#trust, log: this.#log, now: this.#now, walkRoots: async (r) => await this.#walkRoots(url, signal, r)
    }, url, res.body as Buffer, root, this.#root)
    root = inForce
    this.#root = root
    if (res.etag !== undefined) this.#etag = res.etag
    this.status.rootVersion = root.signed.version
    this.status.indexVersion = acc.doc.signed.version
    delete this.status.error
    const fresh = this.current === undefined || this.current.digest !== acc.digest
    this.#accept({ name: this.name, root, index: acc.doc, digest: acc.digest, signers: acc.signers, baseUrl: url })
    if (fresh) this.emit('catalogue', this.current)
    // 'fetched' (watch again at once) only when the next request can be a held one: the server
    // gave an ETag, and did not just ignore one we sent (else a loop of full GETs).
    return res.etag !== undefined && (!conditional || fresh) ? 'fetched' : 'quick'
  }

  async #walkRoots (indexUrl: string, signal: AbortSignal, trusted: RootDocument): Promise<RootDocument> {
    const next = await walkRoots(this.#http, indexUrl, trusted, this.#now(), signal)
    if (next !== trusted) this.#log.info({ catalogue: this.name, from: trusted.signed.version, to: next.signed.version }, 'root rotated')
    return next
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    clearTimeout(this.#expiryTimer)
    this.#abort.abort()
    await this.#polling?.catch(() => {})
  }
}
