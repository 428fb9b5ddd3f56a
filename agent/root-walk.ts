import type { Dispatcher } from 'undici'
import { MAX_ROOT_BYTES, parseSignedYaml } from '../lib/document.js'
import type { RootDocument, SignedDocument } from '../lib/schema.js'
import { walkRootChain } from '../lib/trust.js'
import { fetchBytes } from './http-fetch.js'

/**
 * Key rotation as an agent sees it (DESIGN.md §3): the roots after the trusted one are fetched
 * from beside the index (`root/<N+1>.yaml`, ...) until the server has no more, and each must be
 * signed by its predecessor's root keys and its own. A chain longer than this is not walked.
 */
const MAX_SUCCESSORS = 64

/** The newest root the chain after `trusted` leads to, or `trusted` itself when there is none. */
export async function walkRoots (http: Dispatcher, indexUrl: string, trusted: RootDocument, now: Date, signal: AbortSignal): Promise<RootDocument> {
  const successors: Array<SignedDocument<unknown>> = []
  for (let v = trusted.signed.version + 1; successors.length < MAX_SUCCESSORS; v++) {
    const url = new URL(`root/${v}.yaml`, indexUrl).toString()
    const res = await fetchBytes(http, url, { maxBytes: MAX_ROOT_BYTES, signal, okStatuses: [403, 410] })
    if (res.status !== 200) break
    successors.push(parseSignedYaml(res.body as Buffer, MAX_ROOT_BYTES, `root v${v} from ${url}`))
  }
  return successors.length === 0 ? trusted : walkRootChain(trusted, successors, now)
}
