/**
 * An imgdist server refuses with `{code, message}` (index-server/http-errors.ts, agent/api.ts).
 * Its clients (imgdist-sign publish, imgdist-agent's commands, the agent's status reporter) read
 * that answer back into one line for a person; they all read it here, so a proxy's HTML page,
 * an older agent's shape or a body of megabytes reads the same way everywhere. Pure: the caller
 * does the HTTP and hands over the status and the body text.
 */

/** A message is cut here: it ends up on one terminal line or in one status field. */
export const MAX_MESSAGE_CHARS = 500

/** Our envelopes are a few hundred bytes; a body beyond this is not one and is shown as text. */
const MAX_ENVELOPE_CHARS = 64 * 1024

/** The shape of the codes imgdist sends (lib/errors.ts); anything else is not taken for one. */
const CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/

export interface ErrorEnvelope {
  /** the HTTP status of the answer */
  status: number
  /** the server's stable code, when the body carried one */
  code?: string
  /** one line of at most MAX_MESSAGE_CHARS (plus "…" when cut); '' when the body said nothing */
  message: string
}

type Json = Record<string, unknown>

export function parseErrorEnvelope (status: number, body: string): ErrorEnvelope {
  const json = body.length <= MAX_ENVELOPE_CHARS ? parseJson(body) : undefined
  if (json === undefined) return { status, message: oneLine(body) }
  // {code, message}; an agent started before session 22 answers {error: {code, message}}, and
  // fastify's own answers (a server of another kind) are {statusCode, error: 'Not Found', message}
  const e = typeof json.code === 'string' ? json : isObject(json.error) ? json.error : json
  const code = typeof e.code === 'string' && CODE_RE.test(e.code) ? e.code : undefined
  const message = typeof e.message === 'string' ? e.message : typeof json.error === 'string' ? json.error : body
  return { status, ...(code !== undefined ? { code } : {}), message: oneLine(message) }
}

/**
 * "HTTP 403 SITE_UNKNOWN: site ... is not registered here; ...", "HTTP 502: <text>" or "HTTP 503".
 * `withCode: false` where the code is shown already, as the code of the error that carries the line.
 */
export function formatErrorEnvelope (e: ErrorEnvelope, opts: { withCode?: boolean } = {}): string {
  const code = opts.withCode !== false && e.code !== undefined ? ` ${e.code}` : ''
  return `HTTP ${e.status}${code}${e.message !== '' ? `: ${e.message}` : ''}`
}

function parseJson (text: string): Json | undefined {
  try {
    const v: unknown = JSON.parse(text)
    return isObject(v) ? v : undefined
  } catch {
    return undefined
  }
}

function isObject (v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Newlines and terminal control characters from a server are no business of the operator's terminal. */
function oneLine (s: string): string {
  // a prefix is all that can be shown, whatever its whitespace collapses to
  const long = s.length > MAX_MESSAGE_CHARS * 4
  let line = s.slice(0, MAX_MESSAGE_CHARS * 4).replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, ' ').trim()
  if (!long && line.length <= MAX_MESSAGE_CHARS) return line
  line = line.slice(0, MAX_MESSAGE_CHARS)
  // never half of a surrogate pair (an emoji, say) at the cut
  if (/[\uD800-\uDBFF]$/.test(line)) line = line.slice(0, -1)
  return line + '…'
}
