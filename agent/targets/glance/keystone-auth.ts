import type { Logger } from 'pino'
import { request, type Dispatcher } from 'undici'
import { retryDelay } from '../../../lib/backoff.js'
import type { KeystoneCredentials, ResolvedCloud } from './clouds-config.js'
import { GlanceError, errorMessageOf, isRetryableStatus } from './glance-errors.js'

/**
 * A Keystone v3 session: issues a project-scoped token, finds Glance in its service catalog,
 * re-issues it before it expires (or when Glance says 401), and never logs or returns a secret.
 */

export interface CatalogEndpoint { interface?: string, region?: string, region_id?: string, url?: string }
export interface CatalogEntry { type?: string, name?: string, endpoints?: CatalogEndpoint[] }

export interface KeystoneToken {
  /** the X-Subject-Token value; treat as a secret */
  readonly value: string
  readonly expiresAt: number
  readonly projectId?: string
  readonly projectName?: string
  readonly userId?: string
  readonly catalog: CatalogEntry[]
}

export interface KeystoneSessionOptions {
  cloud: ResolvedCloud
  dispatcher: Dispatcher
  logger?: Logger
  requestTimeoutMs: number
  maxAttempts: number
  retryBaseMs: number
  retryMaxMs: number
  authFailureHoldMs: number
  now?: () => number
}

/** Re-issue when less than this is left, so a request never starts with a token about to die. */
export const RENEW_MARGIN_MS = 120_000

export function authRequestBody (c: KeystoneCredentials): unknown {
  const domain = (id?: string, name?: string): Record<string, string> => id !== undefined ? { id } : { name: name ?? 'Default' }
  const user = (): Record<string, unknown> => c.userId !== undefined
    ? { id: c.userId }
    : { name: c.username, domain: domain(c.userDomainId, c.userDomainName) }
  if (c.kind === 'application_credential') {
    // an application credential carries its own project scope; Keystone refuses an explicit one
    const ac: Record<string, unknown> = c.id !== undefined ? { id: c.id, secret: c.secret } : { name: c.name, secret: c.secret, user: user() }
    return { auth: { identity: { methods: ['application_credential'], application_credential: ac } } }
  }
  const project = c.projectId !== undefined
    ? { id: c.projectId }
    : { name: c.projectName, domain: domain(c.projectDomainId, c.projectDomainName) }
  return { auth: { identity: { methods: ['password'], password: { user: { ...user(), password: c.password } } }, scope: { project } } }
}

/** The Glance base URL (without /v2) from a catalog, per interface and region. */
export function findImageEndpoint (catalog: CatalogEntry[], iface: string, region?: string): string | undefined {
  for (const svc of catalog) {
    if (svc.type !== 'image') continue
    for (const ep of svc.endpoints ?? []) {
      if (ep.url === undefined || ep.interface !== iface) continue
      if (region !== undefined && ep.region_id !== region && ep.region !== region) continue
      return normaliseGlanceUrl(ep.url)
    }
  }
  return undefined
}

export function normaliseGlanceUrl (url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '')
}

export class KeystoneSession {
  readonly #opts: KeystoneSessionOptions
  #token: KeystoneToken | undefined
  #pending: Promise<KeystoneToken> | undefined
  #refused: { err: GlanceError, until: number } | undefined
  readonly #now: () => number

  constructor (opts: KeystoneSessionOptions) {
    this.#opts = opts
    this.#now = opts.now ?? Date.now
  }

  /** A token valid for at least `minValidityMs` more (plus the renewal margin). */
  async token (signal?: AbortSignal, minValidityMs = 0): Promise<KeystoneToken> {
    const t = this.#token
    if (t !== undefined && t.expiresAt - this.#now() > RENEW_MARGIN_MS + minValidityMs) return t
    this.#pending ??= this.#issue(signal).finally(() => { this.#pending = undefined })
    return await this.#pending
  }

  /** Glance said 401 with this token: drop it so the next call re-issues. */
  invalidate (value: string): void {
    if (this.#token?.value === value) this.#token = undefined
  }

  get current (): KeystoneToken | undefined { return this.#token }

  async #issue (signal?: AbortSignal): Promise<KeystoneToken> {
    const o = this.#opts
    if (this.#refused !== undefined && this.#now() < this.#refused.until) throw this.#refused.err
    const url = `${o.cloud.authUrl}/auth/tokens`
    const body = JSON.stringify(authRequestBody(o.cloud.credentials))
    let last: GlanceError | undefined
    for (let attempt = 1; attempt <= o.maxAttempts; attempt++) {
      if (attempt > 1) await sleep(retryDelay(attempt - 1, last?.retryAfter, { baseMs: o.retryBaseMs, maxMs: o.retryMaxMs }, this.#now()), signal)
      let res: Dispatcher.ResponseData
      try {
        res = await request(url, {
          method: 'POST',
          dispatcher: o.dispatcher,
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body,
          signal,
          headersTimeout: o.requestTimeoutMs,
          bodyTimeout: o.requestTimeoutMs
        })
      } catch (err) {
        if (signal?.aborted === true) throw new GlanceError('ABORTED', 'aborted', { cause: err })
        last = new GlanceError('KEYSTONE_UNAVAILABLE', `Keystone at ${o.cloud.authUrl} unreachable: ${(err as Error).message}`, { retryable: true, cause: err })
        o.logger?.warn({ code: last.code, attempt, err: (err as Error).message }, 'keystone request failed')
        continue
      }
      const text = await res.body.text()
      if (res.statusCode === 201 || res.statusCode === 200) return this.#accept(res, text)
      const msg = errorMessageOf(text)
      if (res.statusCode === 401) {
        const err = new GlanceError('AUTH_FAILED',
          `Keystone ${o.cloud.authUrl} refused the credentials from ${o.cloud.source} (401): ${msg}`, { status: 401 })
        this.#refused = { err, until: this.#now() + o.authFailureHoldMs }
        o.logger?.error({ code: err.code, source: o.cloud.source }, 'keystone refused the credentials')
        throw err
      }
      if (!isRetryableStatus(res.statusCode)) {
        throw new GlanceError('KEYSTONE_REQUEST_FAILED', `Keystone token request failed (${res.statusCode}): ${msg}`, { status: res.statusCode })
      }
      last = new GlanceError('KEYSTONE_UNAVAILABLE', `Keystone answered ${res.statusCode}: ${msg}`, { retryable: true, status: res.statusCode })
      last.retryAfter = res.headers['retry-after']
      o.logger?.warn({ code: last.code, attempt, status: res.statusCode }, 'keystone request failed')
    }
    throw last ?? new GlanceError('KEYSTONE_UNAVAILABLE', 'Keystone unavailable', { retryable: true })
  }

  #accept (res: Dispatcher.ResponseData, text: string): KeystoneToken {
    const value = res.headers['x-subject-token']
    let body: { token?: { expires_at?: string, project?: { id?: string, name?: string }, user?: { id?: string }, catalog?: CatalogEntry[] } }
    try { body = JSON.parse(text) } catch { body = {} }
    if (typeof value !== 'string' || body.token === undefined) {
      throw new GlanceError('KEYSTONE_REQUEST_FAILED', 'Keystone answered without a token (is auth_url a Keystone v3 endpoint?)')
    }
    const expiresAt = Date.parse(body.token.expires_at ?? '')
    const token: KeystoneToken = {
      value,
      expiresAt: Number.isNaN(expiresAt) ? this.#now() + 3600_000 : expiresAt,
      projectId: body.token.project?.id,
      projectName: body.token.project?.name,
      userId: body.token.user?.id,
      catalog: body.token.catalog ?? []
    }
    this.#token = token
    this.#refused = undefined
    this.#opts.logger?.debug({ projectId: token.projectId, expiresAt: new Date(token.expiresAt).toISOString() }, 'keystone token issued')
    return token
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(new GlanceError('ABORTED', 'aborted')) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    if (signal?.aborted === true) onAbort()
    else signal?.addEventListener('abort', onAbort, { once: true })
  })
}
