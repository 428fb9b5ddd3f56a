import type { IncomingMessage, ServerResponse } from 'node:http'
import { Server as TrackerServer } from 'bittorrent-tracker'

/**
 * bittorrent-tracker's server with only its HTTP protocol, mounted on the fastify port
 * (`/announce`, `/scrape`), so a fresh swarm bootstraps without the public DHT or an extra port.
 * It tracks only info hashes the current index lists: the server is not an open tracker.
 */
export class OriginTracker {
  readonly #server: TrackerServer
  #closed = false

  constructor (allowed: (infoHash: string) => boolean, opts: { trustProxy?: boolean, intervalMs?: number, onWarning?: (err: Error) => void } = {}) {
    this.#server = new TrackerServer({
      http: false,
      udp: false,
      ws: false,
      stats: false,
      trustProxy: opts.trustProxy ?? false,
      interval: opts.intervalMs,
      filter: (infoHash, _params, cb) => {
        cb(allowed(infoHash) ? null : new Error('this tracker serves only the images of its catalogue'))
      }
    })
    // Client mistakes arrive as 'warning'; an unhandled 'error' would crash the process.
    this.#server.on('warning', (err: Error) => opts.onWarning?.(err))
    this.#server.on('error', (err: Error) => opts.onWarning?.(err))
  }

  handle (action: 'announce' | 'scrape', req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Content-Type', 'text/plain')
    this.#server.onHttpRequest(req, res, { action })
  }

  /** Peers that announced the torrent complete, `except` (a peer id, hex) not counted: the seeds an origin with an egress budget leaves second copies to (swarm/egress-budget.ts). */
  seeds (infoHash: string, except: string): number {
    const peers = this.#server.torrents[infoHash]?.peers
    if (peers === undefined) return 0
    let n = 0
    for (const key of peers.keys) {
      const p = peers.peek(key)
      if (p?.complete === true && p.peerId !== except) n++
    }
    return n
  }

  stats (): { swarms: number, peers: number } {
    const swarms = Object.values(this.#server.torrents)
    return { swarms: swarms.length, peers: swarms.reduce((n, s) => n + s.complete + s.incomplete, 0) }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
