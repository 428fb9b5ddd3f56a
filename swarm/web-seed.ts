import { request, type Dispatcher } from 'undici'
import { ImgdistError } from '../lib/errors.js'

/**
 * A BEP 19 web seed: an HTTP server holding the whole file, asked for one piece at a time with
 * a Range request. The session uses it only for pieces no BitTorrent peer offers, or when the
 * peers have gone quiet: the web seed is usually the origin, whose upload is the scarce thing.
 * Failures back off; a seed whose bytes fail sha1 is banned like a peer.
 */

export const WEB_SEED_PARALLEL = 2

export class WebSeed {
  readonly url: string
  inFlight = 0
  failures = 0
  nextAt = 0
  banned = false
  downloaded = 0
  /** requests stopped part-way because peers completed the piece first */
  cutOff = 0
  /** aborts this seed's requests in flight when it is banned */
  readonly stop = new AbortController()
  readonly #fileUrl: string

  constructor (url: string, fileName: string) {
    this.url = url
    // BEP 19: a URL ending in '/' names a directory holding the torrent's file.
    this.#fileUrl = url.endsWith('/') ? url + encodeURIComponent(fileName) : url
  }

  get usable (): boolean { return !this.banned && this.inFlight < WEB_SEED_PARALLEL && Date.now() >= this.nextAt }

  ban (): void {
    this.banned = true
    this.stop.abort()
  }

  failed (): void {
    this.failures++
    this.nextAt = Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(this.failures, 6))
  }

  /** Exactly `length` bytes at `offset`, or an error; never more than asked for is buffered. */
  async fetch (offset: number, length: number, dispatcher: Dispatcher | undefined, signal: AbortSignal): Promise<Buffer> {
    let res: Dispatcher.ResponseData
    try {
      res = await request(this.#fileUrl, {
        method: 'GET',
        headers: { range: `bytes=${offset}-${offset + length - 1}` },
        signal: AbortSignal.any([signal, this.stop.signal]),
        ...(dispatcher !== undefined ? { dispatcher } : {})
      })
    } catch (err) {
      throw new ImgdistError('NETWORK_ERROR', `web seed ${this.url}: ${(err as Error).message}`, { cause: err })
    }
    if (res.statusCode !== 206 && !(res.statusCode === 200 && offset === 0)) {
      await res.body.dump()
      throw new ImgdistError('HTTP_ERROR', `web seed ${this.url}: HTTP ${res.statusCode} for a range request`)
    }
    const out = Buffer.allocUnsafeSlow(length)
    let got = 0
    try {
      for await (const chunk of res.body) {
        const c = chunk as Buffer
        const k = Math.min(c.length, length - got)
        c.copy(out, got, 0, k)
        got += k
        if (got === length) break // a 200 carries the whole file: stop at the piece's end
      }
    } catch (err) {
      throw new ImgdistError('NETWORK_ERROR', `web seed ${this.url}: ${(err as Error).message}`, { cause: err })
    } finally {
      res.body.destroy()
    }
    if (got !== length) throw new ImgdistError('NETWORK_ERROR', `web seed ${this.url}: ${got} of ${length} bytes`)
    this.downloaded += length
    return out
  }
}
