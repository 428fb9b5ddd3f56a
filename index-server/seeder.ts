import WebTorrent, { type Torrent } from 'webtorrent'
import { ImgdistError } from '../lib/errors.js'
import type { SeederStats } from './metrics.js'
import { Mutex } from './mutex.js'

/** One image the origin should seed: its verified file is `<imagesDir>/<id>`, the torrent's name is `<id>`. */
export interface SeedItem { id: string, infoHash: string, torrent: Uint8Array }

export interface SeederOptions {
  imagesDir: string
  dht: boolean
  utp: boolean
  torrentPort: number
  /** bytes per second; undefined or negative: unlimited */
  uploadLimit?: number
  onWarning?: (msg: string, err?: unknown) => void
}

/**
 * The origin seed: one webtorrent client seeding exactly the set of images it was last given.
 * Files were verified against the signed sha512 before they reach this set, so torrents are added
 * with skipVerify (no re-hash of every piece at each start). Revoked or removed images are
 * dropped from the client without touching their files.
 */
export class OriginSeeder {
  readonly opts: SeederOptions
  #client: WebTorrent | undefined
  #announce: string[] = []
  #mutex = new Mutex()
  #closed = false

  constructor (opts: SeederOptions) { this.opts = opts }

  get port (): number | undefined { return this.#client?.torrentPort }

  /** Starts listening for peers; `announce` are the tracker URLs every seeded torrent announces to. */
  async start (announce: string[]): Promise<void> {
    if (this.#client !== undefined || this.#closed) return
    this.#announce = announce
    const client = new WebTorrent({
      dht: this.opts.dht,
      lsd: false,
      utp: this.opts.utp,
      natUpnp: false,
      natPmp: false,
      torrentPort: this.opts.torrentPort,
      uploadLimit: this.opts.uploadLimit !== undefined && this.opts.uploadLimit > 0 ? this.opts.uploadLimit : -1
    })
    this.#client = client
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(new ImgdistError('SEEDER_START', `cannot start the origin seeder on port ${this.opts.torrentPort}: ${err.message}`, { cause: err }))
      }
      client.once('error', onError)
      client.once('listening', () => { client.removeListener('error', onError); resolve() })
    })
    client.on('error', (err: Error) => this.opts.onWarning?.(`seeder error: ${err.message}`, err))
  }

  /** Makes the seeded set exactly `items` (by info hash). Calls are serialised. */
  async sync (items: SeedItem[]): Promise<void> {
    await this.#mutex.run(async () => {
      const client = this.#client
      if (client === undefined || this.#closed) return
      const wanted = new Map(items.map((i) => [i.infoHash, i]))
      for (const t of [...client.torrents]) {
        if (!wanted.has(t.infoHash)) await this.#remove(client, t)
      }
      const have = new Set(client.torrents.map((t) => t.infoHash))
      for (const item of wanted.values()) {
        if (have.has(item.infoHash)) continue
        await this.#add(client, item)
      }
    })
  }

  async #add (client: WebTorrent, item: SeedItem): Promise<void> {
    await new Promise<void>((resolve) => {
      const torrent = client.add(item.torrent, { path: this.opts.imagesDir, strategy: 'rarest', skipVerify: true, announce: this.#announce })
      const onError = (err: Error): void => { this.opts.onWarning?.(`cannot seed ${item.id}: ${err.message}`, err); resolve() }
      torrent.once('error', onError)
      torrent.once('ready', () => {
        torrent.removeListener('error', onError)
        torrent.on('error', (err: Error) => this.opts.onWarning?.(`seeding ${item.id}: ${err.message}`, err))
        resolve()
      })
    })
  }

  async #remove (client: WebTorrent, t: Torrent): Promise<void> {
    await new Promise<void>((resolve) => {
      client.remove(t, { destroyStore: false }, () => resolve()).catch(() => resolve())
    })
  }

  seeding (): string[] { return this.#client?.torrents.filter((t) => t.ready).map((t) => t.infoHash) ?? [] }

  stats (): SeederStats | undefined {
    const c = this.#client
    if (c === undefined || c.destroyed) return undefined
    return {
      torrents: c.torrents.length,
      peers: c.torrents.reduce((n, t) => n + t.numPeers, 0),
      uploadSpeed: c.uploadSpeed,
      uploaded: c.torrents.reduce((n, t) => n + t.uploaded, 0)
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const c = this.#client
    if (c === undefined) return
    await this.#mutex.run(async () => {
      await new Promise<void>((resolve) => c.destroy(() => resolve()))
    })
  }
}
