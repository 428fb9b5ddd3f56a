/**
 * The held conditional GET of index.yaml (long polling), shared by the index server that holds
 * and the agent that asks: `If-None-Match: <current ETag>` plus `Prefer: wait=N` (RFC 7240)
 * is answered when a new index is published or after N seconds (then 304), whichever is first.
 */

/**
 * The longest hold, in seconds. Below the 60 s that common reverse proxies (nginx
 * `proxy_read_timeout`, many HAProxy `timeout server` settings) allow an idle upstream, so a
 * held request ends as the server's 304 rather than a proxy's 504.
 */
export const MAX_WAIT_SECONDS = 50

/** The `wait` preference of a Prefer header in whole seconds, or undefined when absent or malformed. */
export function preferredWait (header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined
  for (const list of Array.isArray(header) ? header : [header]) {
    for (const pref of list.split(',')) {
      // a preference is `token [= word] *( ; parameter )`; only wait's value matters here
      const m = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*(?:;.*)?$/i.exec(pref)
      if (m !== null) return Number(m[1])
    }
  }
  return undefined
}
