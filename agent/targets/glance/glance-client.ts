import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { request, type Dispatcher } from 'undici'
import { retryDelay } from '../../../lib/backoff.js'
import { GlanceError, codeForStatus, errorMessageOf, isRetryableStatus } from './glance-errors.js'
import { sleep, type KeystoneSession, type KeystoneToken } from './keystone-auth.js'

/**
 * Glance v2 over undici: keep-alive connections from one dispatcher, per-request timeouts,
 * streamed uploads, bounded retries with backoff and jitter (honouring Retry-After), and one
 * token re-issue when Glance answers 401.
 */

export type RetryMode =
  /** idempotent: retry 408/429/5xx and any connection error */
  | 'idempotent'
  /** not idempotent (create, upload): retry only when the server certainly did nothing */
  | 'unprocessed'

export interface GlanceCall {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  path: string
  query?: Record<string, string>
  json?: unknown
  /** JSON patch ops (application/openstack-images-v2.1-json-patch) */
  patch?: unknown[]
  /** a fresh stream of the bytes per attempt, never a buffer */
  upload?: { open: () => Readable, length: number }
  ok: number[]
  retry: RetryMode
  imageId?: string
  signal?: AbortSignal
  /** overrides maxAttempts (a best-effort clean-up should not wait long) */
  attempts?: number
}

export interface GlanceClientOptions {
  session: KeystoneSession
  dispatcher: Dispatcher
  /** explicit endpoint, else the catalog's image service */
  endpointOverride?: string
  interface: string
  region?: string
  logger?: Logger
  requestTimeoutMs: number
  uploadTimeoutMs: number
  maxAttempts: number
  retryBaseMs: number
  retryMaxMs: number
  findEndpoint: (token: KeystoneToken) => string | undefined
}

// errors raised before a byte of the request reached the server
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

function errCode (err: unknown): string | undefined {
  const e = err as { code?: unknown, cause?: { code?: unknown } }
  if (typeof e?.code === 'string') return e.code
  if (typeof e?.cause?.code === 'string') return e.cause.code
  return undefined
}

export class GlanceClient {
  readonly #o: GlanceClientOptions
  /** the endpoint used last, for the operator view */
  endpoint: string | undefined

  constructor (opts: GlanceClientOptions) {
    this.#o = opts
    this.endpoint = opts.endpointOverride
  }

  async call<T = unknown> (c: GlanceCall): Promise<{ status: number, body: T }> {
    const o = this.#o
    let last: GlanceError | undefined
    let reissued = false
    const attempts = c.attempts ?? o.maxAttempts
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1 && last !== undefined) {
        const wait = retryDelay(attempt - 1, last.retryAfter, { baseMs: o.retryBaseMs, maxMs: o.retryMaxMs }, Date.now())
        o.logger?.warn({ code: last.code, status: last.status, attempt, waitMs: wait, imageId: c.imageId, err: last.message }, 'glance request failed, retrying')
        await sleep(wait, c.signal)
      }
      const token = await o.session.token(c.signal, c.upload !== undefined ? 600_000 : 0)
      const base = this.#base(token)
      const url = new URL(`${base}${c.path}`)
      for (const [k, v] of Object.entries(c.query ?? {})) url.searchParams.set(k, v)
      const headers: Record<string, string> = { 'x-auth-token': token.value, accept: 'application/json' }
      let body: string | Readable | undefined
      if (c.json !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(c.json) }
      if (c.patch !== undefined) { headers['content-type'] = 'application/openstack-images-v2.1-json-patch'; body = JSON.stringify(c.patch) }
      if (c.upload !== undefined) {
        headers['content-type'] = 'application/octet-stream'
        headers['content-length'] = String(c.upload.length)
        body = c.upload.open()
      }
      let res: Dispatcher.ResponseData
      try {
        res = await request(url, {
          method: c.method,
          dispatcher: o.dispatcher,
          headers,
          body,
          signal: c.signal,
          headersTimeout: c.upload !== undefined ? o.uploadTimeoutMs : o.requestTimeoutMs,
          bodyTimeout: o.requestTimeoutMs
        })
      } catch (err) {
        if (typeof body === 'object') body.destroy()
        if (c.signal?.aborted === true) throw new GlanceError('ABORTED', 'aborted', { cause: err, imageId: c.imageId })
        const code = errCode(err)
        last = new GlanceError('GLANCE_UNAVAILABLE', `${c.method} ${url.pathname} failed: ${(err as Error).message}${code !== undefined ? ` (${code})` : ''}`,
          { retryable: true, cause: err, imageId: c.imageId })
        if (c.retry === 'unprocessed' && (code === undefined || !NOT_SENT.has(code))) throw last
        continue
      }
      const text = await res.body.text().catch(() => '')
      if (c.ok.includes(res.statusCode)) {
        let parsed: unknown = text
        if (text !== '' && String(res.headers['content-type'] ?? '').includes('json')) {
          try { parsed = JSON.parse(text) } catch { parsed = text }
        }
        return { status: res.statusCode, body: parsed as T }
      }
      if (res.statusCode === 401 && !reissued) {
        // expired or revoked early: one fresh token, not counted as an attempt
        reissued = true
        o.session.invalidate(token.value)
        attempt--
        last = undefined
        continue
      }
      const msg = errorMessageOf(text)
      const err = new GlanceError(codeForStatus(res.statusCode), `Glance ${c.method} ${url.pathname} answered ${res.statusCode}: ${msg}`,
        { retryable: isRetryableStatus(res.statusCode), status: res.statusCode, imageId: c.imageId })
      err.retryAfter = res.headers['retry-after']
      if (!err.retryable) throw err
      last = err
      if (c.retry === 'unprocessed' && ![408, 429, 503].includes(res.statusCode)) throw err
    }
    throw last ?? new GlanceError('GLANCE_UNAVAILABLE', 'Glance unavailable', { retryable: true, imageId: c.imageId })
  }

  #base (token: KeystoneToken): string {
    if (this.#o.endpointOverride !== undefined) return this.#o.endpointOverride.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '')
    const ep = this.#o.findEndpoint(token)
    if (ep === undefined) {
      throw new GlanceError('GLANCE_ENDPOINT_NOT_FOUND',
        `no image service with interface "${this.#o.interface}"${this.#o.region !== undefined ? ` in region "${this.#o.region}"` : ''} in the Keystone catalog (set endpoint: to override)`)
    }
    this.endpoint = ep
    return ep
  }
}
