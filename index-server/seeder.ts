import { join } from 'node:path'
import type { Logger } from 'pino'
import { ImgdistError } from '../lib/errors.js'
import { listenError } from '../lib/listen-error.js'
import { ORIGIN_PEER_ID_PREFIX } from '../lib/peer-wire.js'
import { Swarm } from '../swarm/swarm.js'
import type { SeederStats } from './metrics.js'
import { Mutex } from './mutex.js'

/** One image the origin should seed: its verified file is `<imagesDir>/<id>`, the torrent's name is `<id>`. */
export interface SeedItem { id: string, infoHash: string, torrent: Uint8Array }

export interface SeederOptions {
  imagesDir: string
  dht: boolean
  torrentPort: number
  /** bytes per second; undefined or negative: unlimited */
  uploadLimit?: number
  /** connections per torrent (default 200: every site of a large fleet at once) */
  maxConns?: number
  /** copies of each image sent while other peers could send them instead (swarm/egress-budget.ts); 0 or undefined: no limit */
  egressBudget?: number
}

/**
 * The origin seed: the engine the agents use (swarm/), seeding exactly the set of images it was
 * last given. Files were verified against the signed sha512 before they reach this set, so they
 * are seeded read-only without a re-hash of every piece at each start. Revoked or removed images
 * are dropped without touching their files. Its peer id is not an agent's, so agents apply the
 * share rule to it and the origin sends each piece about once.
 */
export class OriginSeeder {
  readonly opts: SeederOptions
  #swarm: Swarm | undefined
  #mutex = new Mutex()
  #closed = false

  constructor (opts: SeederOptions) { this.opts = opts }

  get port (): number | undefined { return this.#swarm?.port }

  /**
   * Starts listening for peers; `announce` are the tracker URLs every seeded torrent announces to.
   * `seedsElsewhere`: the seeds other than us that our own tracker knows of, for the egress budget.
   */
  async start (announce: string[], log: Logger, seedsElsewhere?: (infoHash: string, ownPeerId: string) => number): Promise<void> {
    if (this.#swarm !== undefined || this.#closed) return
    const swarm = new Swarm({
      dataDir: this.opts.imagesDir,
      torrentPort: this.opts.torrentPort,
      dht: { enabled: this.opts.dht, bootstrap: [] },
      lsd: false,
      // the origin is connected to every downloader: its PEX tells each of them of the others
      pex: true,
      trackers: announce,
      uploadLimit: this.opts.uploadLimit !== undefined && this.opts.uploadLimit > 0 ? this.opts.uploadLimit : 0,
      downloadLimit: 0,
      maxConns: this.opts.maxConns ?? 200,
      peerIdPrefix: ORIGIN_PEER_ID_PREFIX,
      egressBudget: this.opts.egressBudget,
      seedsElsewhere
    }, log)
    this.#swarm = swarm
    try {
      await swarm.listening()
    } catch (err) {
      this.#swarm = undefined
      await swarm.close().catch(() => {})
      const why = listenError(err, `TCP port ${this.opts.torrentPort}`, '--torrent-port, or seeding.torrentPort in the config').message
      throw new ImgdistError('SEEDER_START', `cannot start the origin seeder: ${why}`, { cause: err })
    }
  }

  /** Makes the seeded set exactly `items` (by info hash). Calls are serialised. */
  async sync (items: SeedItem[]): Promise<void> {
    await this.#mutex.run(async () => {
      const swarm = this.#swarm
      if (swarm === undefined || this.#closed) return
      const wanted = new Map(items.map((i) => [i.infoHash, i]))
      for (const t of swarm.torrents()) {
        if (!wanted.has(t.infoHash)) await swarm.remove(t.infoHash, false)
      }
      for (const item of wanted.values()) {
        const existing = swarm.get(item.infoHash)
        if (existing !== undefined && !existing.destroyed) continue
        // One that failed to start (its file missing or short: the engine logs why) is tried again at each sync.
        if (existing !== undefined) await swarm.remove(item.infoHash, false)
        swarm.add(item.infoHash, item.torrent, [], { path: join(this.opts.imagesDir, item.id), verified: true })
      }
    })
  }

  /** info hashes being seeded (their file opened) */
  seeding (): string[] {
    const swarm = this.#swarm
    if (swarm === undefined) return []
    return swarm.torrents().filter((t) => t.ready && !t.destroyed).map((t) => t.infoHash)
  }

  stats (): SeederStats | undefined {
    const swarm = this.#swarm
    if (swarm === undefined || this.#closed) return undefined
    const torrents = swarm.torrents()
    let peers = 0
    let uploaded = 0
    let rejected = 0
    for (const t of torrents) {
      peers += t.peers.size
      uploaded += t.counters.uploaded
      rejected += t.budget?.refused ?? 0
    }
    return { torrents: torrents.length, peers, uploadSpeed: swarm.uploadSpeed, uploaded, rejected }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const swarm = this.#swarm
    if (swarm === undefined) return
    await this.#mutex.run(async () => { await swarm.close() })
  }
}
