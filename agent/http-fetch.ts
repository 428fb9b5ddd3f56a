import { Agent, request, type Dispatcher } from 'undici'
import { ImgdistError } from '../lib/errors.js'
import { preferredWait } from '../lib/held-get.js'

/** Bounded HTTP GETs for catalogue documents and torrents: timeouts, size caps, clear errors. */

export interface FetchResult {
  status: number
  body?: Buffer
  etag?: string
  /** seconds of `Preference-Applied: wait=N`: how long the server said it would hold the request */
  waitApplied?: number
}

export function makeDispatcher (): Dispatcher {
  return new Agent({ connectTimeout: 10_000, headersTimeout: 15_000, bodyTimeout: 30_000, keepAliveTimeout: 10_000 })
}

/**
 * HTTP 503 with Retry-After (RFC 9110 §10.2.3): the server is down on purpose for a moment, e.g.
 * an index server restarting answers its held GETs so. Same code as any HTTP failure; callers
 * may wait `retryAfter` seconds instead of counting it as a failure.
 */
export class RetryLaterError extends ImgdistError {
  readonly retryAfter: number
  constructor (message: string, retryAfter: number) {
    super('HTTP_ERROR', message)
    this.retryAfter = retryAfter
  }
}

/** Retry-After as delta-seconds or an HTTP date, bounded to 1 s … 5 minutes; undefined if absent or unreadable. */
export function retryAfterSeconds (header: string | string[] | undefined, now = Date.now()): number | undefined {
  if (typeof header !== 'string') return undefined
  const v = header.trim()
  const s = /^\d{1,9}$/.test(v) ? Number(v) : (Date.parse(v) - now) / 1000
  if (!Number.isFinite(s)) return undefined
  return Math.min(300, Math.max(1, Math.ceil(s)))
}

export interface FetchOptions {
  maxBytes: number
  etag?: string
  signal?: AbortSignal
  okStatuses?: number[]
  /** `Prefer: wait=N` (a held conditional GET, lib/held-get.ts); the header timeout grows by N */
  waitSeconds?: number
  /** the whole request, body included, ends by then (plus `waitSeconds`); FETCH_DEADLINE_MS unless set */
  deadlineMs?: number
}

/**
 * undici's bodyTimeout is an idle timeout: a server that sends a byte every few seconds would hold
 * a poll, and the subscription with it, for ever. A catalogue document or a .torrent is small.
 */
export const FETCH_DEADLINE_MS = 60_000

/** The caller's abort is ABORTED (not a failure); the deadline and everything else, NETWORK_ERROR. */
function networkError (url: string, err: unknown, caller: AbortSignal | undefined, deadline: AbortSignal, deadlineMs: number): ImgdistError {
  if (caller?.aborted === true) return new ImgdistError('ABORTED', `GET ${url}: stopped`, { cause: err })
  if (deadline.aborted) return new ImgdistError('NETWORK_ERROR', `GET ${url}: no complete answer within ${Math.round(deadlineMs / 1000)} s`, { cause: err })
  return new ImgdistError('NETWORK_ERROR', `GET ${url}: ${(err as Error).message}`, { cause: err })
}

export async function fetchBytes (dispatcher: Dispatcher, url: string, opts: FetchOptions): Promise<FetchResult> {
  let res: Dispatcher.ResponseData
  const headers: Record<string, string> = {}
  if (opts.etag !== undefined) headers['if-none-match'] = opts.etag
  if (opts.waitSeconds !== undefined) headers.prefer = `wait=${opts.waitSeconds}`
  const deadlineMs = (opts.deadlineMs ?? FETCH_DEADLINE_MS) + (opts.waitSeconds ?? 0) * 1000
  const deadline = AbortSignal.timeout(deadlineMs)
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, deadline]) : deadline
  try {
    res = await request(url, {
      dispatcher,
      method: 'GET',
      headers,
      ...(opts.waitSeconds !== undefined ? { headersTimeout: (opts.waitSeconds + 15) * 1000 } : {}),
      signal
    })
  } catch (err) {
    throw networkError(url, err, opts.signal, deadline, deadlineMs)
  }
  const etagHeader = res.headers.etag
  const etag = typeof etagHeader === 'string' ? etagHeader : undefined
  const applied = preferredWait(res.headers['preference-applied'])
  const extra = { ...(etag !== undefined ? { etag } : {}), ...(applied !== undefined ? { waitApplied: applied } : {}) }
  if (res.statusCode === 304 || res.statusCode === 404 || (opts.okStatuses ?? []).includes(res.statusCode)) {
    await res.body.dump()
    return { status: res.statusCode, ...extra }
  }
  if (res.statusCode !== 200) {
    await res.body.dump()
    const retryAfter = res.statusCode === 503 ? retryAfterSeconds(res.headers['retry-after']) : undefined
    if (retryAfter !== undefined) throw new RetryLaterError(`GET ${url}: HTTP 503, retry in ${retryAfter} s`, retryAfter)
    throw new ImgdistError('HTTP_ERROR', `GET ${url}: HTTP ${res.statusCode}`)
  }
  const declared = Number(res.headers['content-length'] ?? 0)
  if (declared > opts.maxBytes) {
    await res.body.dump()
    throw new ImgdistError('TOO_LARGE', `GET ${url}: ${declared} bytes is over the limit of ${opts.maxBytes}`)
  }
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length
      if (total > opts.maxBytes) {
        res.body.destroy()
        throw new ImgdistError('TOO_LARGE', `GET ${url}: body is over the limit of ${opts.maxBytes} bytes`)
      }
      chunks.push(chunk as Buffer)
    }
  } catch (err) {
    if (err instanceof ImgdistError) throw err
    throw networkError(url, err, opts.signal, deadline, deadlineMs)
  }
  return { status: 200, body: Buffer.concat(chunks), ...extra }
}
