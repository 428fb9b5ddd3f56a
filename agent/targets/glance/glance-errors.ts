import { TargetError } from '../target.js'

/**
 * Error codes of the glance target. Retryable ones are retried by the agent with backoff; the
 * others wait for an operator (bad credentials, a refused request, a quota).
 */
export type GlanceCode =
  | 'AUTH_FAILED' // Keystone refused the credentials (401): not retried, or the account gets locked
  | 'KEYSTONE_UNAVAILABLE'
  | 'KEYSTONE_REQUEST_FAILED'
  | 'GLANCE_ENDPOINT_NOT_FOUND'
  | 'GLANCE_UNAVAILABLE' // connection errors, timeouts, 408/429/5xx after the bounded retries
  | 'GLANCE_REQUEST_FAILED' // any other 4xx, with Glance's own message
  | 'GLANCE_FORBIDDEN'
  | 'GLANCE_NOT_FOUND'
  | 'GLANCE_CONFLICT'
  | 'GLANCE_TOO_LARGE' // 413: image_size_cap or the project's storage quota
  | 'GLANCE_HASH_MISMATCH'
  | 'GLANCE_PROPERTY_INVALID'
  | 'GLANCE_FILE_MISMATCH'
  | 'ABORTED'
  | 'IO_ERROR'
  | 'INTERNAL'

export class GlanceError extends TargetError {
  /** the HTTP status that caused it, if any */
  readonly status?: number
  /** the Glance image concerned, if any */
  readonly imageId?: string
  /** the server's Retry-After, kept for the retry loop */
  retryAfter?: string | string[]
  constructor (code: GlanceCode, message: string, opts: { retryable?: boolean, cause?: unknown, status?: number, imageId?: string } = {}) {
    super(code, message, opts)
    this.status = opts.status
    this.imageId = opts.imageId
  }

  withImage (imageId: string): GlanceError {
    if (this.imageId !== undefined) return this
    return new GlanceError(this.code as GlanceCode, this.message, { retryable: this.retryable, cause: this.cause, status: this.status, imageId })
  }

  override toJSON (): { code: string, message: string, retryable: boolean, status?: number, imageId?: string } {
    return { code: this.code, message: this.message, retryable: this.retryable, status: this.status, imageId: this.imageId }
  }
}

/**
 * The human part of an OpenStack error body: Glance answers webob JSON or HTML, Keystone
 * `{error: {message}}`. Bounded, one line, so it fits a status page.
 */
export function errorMessageOf (body: string): string {
  let text = body
  try {
    const j = JSON.parse(body) as Record<string, unknown>
    const e = (j.error ?? j) as Record<string, unknown>
    const m = e.message ?? e.explanation ?? e.title ?? j.message
    if (typeof m === 'string') text = m
  } catch {}
  // webob puts HTML line breaks even into its JSON messages ("...action.<br /><br />")
  text = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()
  return text.length > 500 ? `${text.slice(0, 497)}...` : text
}

export function codeForStatus (status: number): GlanceCode {
  if (status === 401) return 'AUTH_FAILED'
  if (status === 413) return 'GLANCE_TOO_LARGE'
  if (status === 403) return 'GLANCE_FORBIDDEN'
  if (status === 404) return 'GLANCE_NOT_FOUND'
  if (status === 409) return 'GLANCE_CONFLICT'
  if (status === 408 || status === 429 || status >= 500) return 'GLANCE_UNAVAILABLE'
  return 'GLANCE_REQUEST_FAILED'
}

export function isRetryableStatus (status: number): boolean {
  return status === 408 || status === 429 || status >= 500
}

/**
 * A 403 on widening, made actionable: Glance's own text names no policy rule. `image` is as it
 * was before the refused PATCH, which Glance applied none of.
 */
export function visibilityRefused (image: { id: string, visibility?: string, os_hidden?: boolean }, visibility: string, err: GlanceError): GlanceError {
  const rule = visibility === 'public' ? 'publicize_image' : visibility === 'community' ? 'communitize_image' : 'modify_image'
  return new GlanceError('GLANCE_FORBIDDEN', `image ${image.id}: Glance refused visibility ${visibility} (policy rule ${rule}; ` +
    `default: the admin role); the verified image stays ${image.os_hidden === true ? 'hidden and ' : ''}${image.visibility ?? 'private'}. ` +
    `Use visibility community, or grant the rule to a role the agent's credential holds (docs/glance.md, "Least privilege"). ` +
    `Glance said: ${err.message}`, { status: err.status, imageId: image.id, cause: err })
}
