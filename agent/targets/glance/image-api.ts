import { createReadStream } from 'node:fs'
import { pipeline, type Readable } from 'node:stream'
import type { GlanceClient } from './glance-client.js'
import type { GlanceImage } from './image-properties.js'
import { RateLimit } from './throttle.js'

/** The few Glance v2 image calls the target needs, each with its retry mode. */

const MAX_PAGES = 20

export class ImageApi {
  readonly #c: GlanceClient
  constructor (client: GlanceClient) { this.#c = client }

  /** All images matching the filters (following `next` links, bounded). */
  async list (query: Record<string, string>, signal?: AbortSignal): Promise<GlanceImage[]> {
    const out: GlanceImage[] = []
    let q: Record<string, string> = { limit: '100', ...query }
    for (let page = 0; page < MAX_PAGES; page++) {
      const { body } = await this.#c.call<{ images?: GlanceImage[], next?: string }>({ method: 'GET', path: '/v2/images', query: q, ok: [200], retry: 'idempotent', signal })
      out.push(...(body.images ?? []))
      if (typeof body.next !== 'string') break
      const marker = new URL(body.next, 'http://x').searchParams.get('marker')
      if (marker === null) break
      q = { ...q, marker }
    }
    return out
  }

  /**
   * list(), hidden images included: Glance leaves os_hidden ones out unless asked for them, and
   * then lists only those, so it takes two requests. The second may see an image the first did.
   */
  async listWithHidden (query: Record<string, string>, signal?: AbortSignal): Promise<GlanceImage[]> {
    const shown = await this.list(query, signal)
    const seen = new Set(shown.map((i) => i.id))
    const hidden = await this.list({ ...query, os_hidden: 'true' }, signal)
    return [...shown, ...hidden.filter((i) => !seen.has(i.id))]
  }

  async get (id: string, signal?: AbortSignal): Promise<GlanceImage | undefined> {
    const r = await this.#c.call<GlanceImage>({ method: 'GET', path: `/v2/images/${id}`, ok: [200, 404], retry: 'idempotent', imageId: id, signal })
    return r.status === 404 ? undefined : r.body
  }

  async create (body: Record<string, unknown>, signal?: AbortSignal): Promise<GlanceImage> {
    const r = await this.#c.call<GlanceImage>({ method: 'POST', path: '/v2/images', json: body, ok: [201], retry: 'unprocessed', signal })
    return r.body
  }

  /** Streams the file (optionally rate-limited); a fresh read stream per attempt. */
  async upload (id: string, path: string, length: number, bytesPerSecond: number, signal?: AbortSignal): Promise<void> {
    const open = (): Readable => {
      const file = createReadStream(path, { highWaterMark: 1024 * 1024 })
      if (bytesPerSecond <= 0) return file
      const limited = new RateLimit(bytesPerSecond)
      pipeline(file, limited, () => {})
      return limited
    }
    await this.#c.call({ method: 'PUT', path: `/v2/images/${id}/file`, upload: { open, length }, ok: [204], retry: 'unprocessed', imageId: id, signal })
  }

  async patch (id: string, ops: unknown[], signal?: AbortSignal): Promise<GlanceImage> {
    const r = await this.#c.call<GlanceImage>({ method: 'PATCH', path: `/v2/images/${id}`, patch: ops, ok: [200], retry: 'idempotent', imageId: id, signal })
    return r.body
  }

  async deactivate (id: string, signal?: AbortSignal): Promise<void> {
    await this.#c.call({ method: 'POST', path: `/v2/images/${id}/actions/deactivate`, ok: [204], retry: 'idempotent', imageId: id, signal })
  }

  async reactivate (id: string, signal?: AbortSignal): Promise<void> {
    await this.#c.call({ method: 'POST', path: `/v2/images/${id}/actions/reactivate`, ok: [204], retry: 'idempotent', imageId: id, signal })
  }

  /** true if deleted now, false if it was already gone */
  async delete (id: string, signal?: AbortSignal, attempts?: number): Promise<boolean> {
    const r = await this.#c.call({ method: 'DELETE', path: `/v2/images/${id}`, ok: [204, 404], retry: 'idempotent', imageId: id, signal, attempts })
    return r.status === 204
  }
}
