import { EventEmitter } from 'node:events'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import WebTorrent, { type Torrent, type Wire } from 'webtorrent'
import { ImgdistError } from '../lib/errors.js'

/**
 * The BitTorrent side, wrapping one webtorrent client: rarest-first always (sequential turns a
 * swarm into central HTTP, DESIGN.md §8), disk-backed pieces under dataDir/downloads/<infoHash>/,
 * bytes counted per source, and peers that send pieces failing their sha1 cut off (webtorrent
 * 2.8.5 only discards such a piece; it does not penalise whoever sent it).
 */

export interface SwarmOptions {
  dataDir: string
  torrentPort: number
  dht: { enabled: boolean, bootstrap: string[], port?: number | undefined }
  lsd: boolean
  trackers: string[]
  uploadLimit: number
  downloadLimit: number
  maxConns: number
}

export interface TorrentCounters {
  bytesFromPeers: number
  bytesFromWebSeeds: number
  uploaded: number
  hashFailures: number
  bannedPeers: string[]
  /** piece bytes verified from disk when the torrent was (re-)added: what a resume saved */
  resumedBytes: number
}

export interface PeerInfo { infoHash: string, address: string, type: string, downloaded: number, uploaded: number, downSpeed: number, upSpeed: number }

/** A web seed's wire carries no address: its URL is the id of the webtorrent Peer that owns it. */
export function peerKey (torrent: Torrent, wire: Wire): string {
  if (wire.type !== 'webSeed') return `${wire.remoteAddress ?? '?'}:${wire.remotePort ?? 0}`
  const peers = (torrent as Torrent & { _peers?: Map<string, { id: string, wire: unknown }> })._peers
  for (const p of peers?.values() ?? []) if (p.wire === wire) return p.id
  return 'webseed'
}

export class TorrentHandle extends EventEmitter {
  readonly torrent: Torrent
  readonly counters: TorrentCounters = { bytesFromPeers: 0, bytesFromWebSeeds: 0, uploaded: 0, hashFailures: 0, bannedPeers: [], resumedBytes: 0 }
  readonly done: Promise<void>
  readonly #contributors = new Map<number, Set<Wire>>()
  readonly #strikes = new Map<string, number>()
  readonly #banned = new Set<string>()

  constructor (torrent: Torrent, log: Logger) {
    super()
    this.torrent = torrent
    this.done = new Promise<void>((resolve, reject) => {
      torrent.once('done', () => { resolve() })
      torrent.once('error', (err: Error) => { reject(new ImgdistError('TORRENT_INVALID', `torrent ${torrent.infoHash}: ${err.message}`, { cause: err })) })
      torrent.once('ready', () => {
        this.counters.resumedBytes = torrent.downloaded
        if (torrent.done) resolve()
      })
    })
    this.done.catch(() => {})
    torrent.on('wire', (wire: Wire) => { this.#onWire(wire) })
    torrent.on('upload', (n: number) => { this.counters.uploaded += n })
    torrent.on('verified', (index: number) => { this.#contributors.delete(index) })
    torrent.on('warning', (err: Error) => {
      const m = /^Piece (\d+) failed verification/.exec(err.message)
      if (m === null) { log.debug({ infoHash: torrent.infoHash, err: err.message }, 'torrent warning'); return }
      this.counters.hashFailures++
      this.#onBadPiece(Number(m[1]), log)
    })
  }

  #peerKey (wire: Wire): string { return peerKey(this.torrent, wire) }

  #onWire (wire: Wire): void {
    const key = this.#peerKey(wire)
    if (this.#banned.has(key)) { wire.destroy(); return }
    wire.on('download', (n: number) => {
      if (wire.type === 'webSeed') this.counters.bytesFromWebSeeds += n
      else this.counters.bytesFromPeers += n
    })
    wire.on('piece', (index: number) => {
      let s = this.#contributors.get(index)
      if (s === undefined) { s = new Set(); this.#contributors.set(index, s) }
      s.add(wire)
    })
  }

  /** A sole sender of a bad piece is banned at once; a co-sender after two strikes. */
  #onBadPiece (index: number, log: Logger): void {
    const senders = [...(this.#contributors.get(index) ?? [])]
    this.#contributors.delete(index)
    for (const wire of senders) {
      const key = this.#peerKey(wire)
      const strikes = (this.#strikes.get(key) ?? 0) + 1
      this.#strikes.set(key, strikes)
      if (senders.length === 1 || strikes >= 2) {
        if (this.#banned.has(key)) continue
        this.#banned.add(key)
        this.counters.bannedPeers.push(key)
        log.warn({ infoHash: this.torrent.infoHash, peer: key, piece: index }, 'peer sent a piece that failed its sha1: disconnected and banned')
        if (wire.type === 'webSeed') this.torrent.removePeer(key)
        wire.destroy()
      }
    }
  }
}

export class Swarm {
  readonly client: WebTorrent
  readonly #opts: SwarmOptions
  readonly #log: Logger
  readonly #handles = new Map<string, TorrentHandle>()
  #closed = false

  constructor (opts: SwarmOptions, log: Logger) {
    this.#opts = opts
    this.#log = log
    this.client = new WebTorrent({
      torrentPort: opts.torrentPort,
      dht: opts.dht.enabled ? { bootstrap: opts.dht.bootstrap } : false,
      ...(opts.dht.enabled && opts.dht.port !== undefined ? { dhtPort: opts.dht.port } : {}),
      lsd: opts.lsd,
      utp: false,
      natUpnp: false,
      natPmp: false,
      maxConns: opts.maxConns,
      uploadLimit: opts.uploadLimit > 0 ? opts.uploadLimit : -1,
      downloadLimit: opts.downloadLimit > 0 ? opts.downloadLimit : -1
    })
    this.client.on('error', (err: Error) => { log.error({ err: err.message }, 'webtorrent client error') })
  }

  async listening (): Promise<number> {
    const addr = this.client.address()
    if (addr !== null && addr.port !== 0) return addr.port
    await new Promise<void>((resolve) => this.client.once('listening', () => { resolve() }))
    return this.client.torrentPort
  }

  downloadDir (infoHash: string): string { return join(this.#opts.dataDir, 'downloads', infoHash) }

  get (infoHash: string): TorrentHandle | undefined { return this.#handles.get(infoHash) }

  /** Adds a verified-to-be-signed .torrent; existing pieces under its folder are hash-checked, not re-fetched. */
  add (infoHash: string, torrentBytes: Uint8Array, webSeeds: string[]): TorrentHandle {
    const existing = this.#handles.get(infoHash)
    if (existing !== undefined) return existing
    const torrent = this.client.add(Buffer.from(torrentBytes), {
      path: this.downloadDir(infoHash),
      strategy: 'rarest',
      skipVerify: false,
      announce: this.#opts.trackers,
      urlList: webSeeds,
      destroyStoreOnDestroy: false
    })
    const handle = new TorrentHandle(torrent, this.#log)
    this.#handles.set(infoHash, handle)
    return handle
  }

  /** Stops seeding; with `deleteData` the downloaded pieces are removed from disk too. */
  async remove (infoHash: string, deleteData: boolean): Promise<void> {
    const h = this.#handles.get(infoHash)
    this.#handles.delete(infoHash)
    if (h !== undefined && !h.torrent.destroyed) {
      await new Promise<void>((resolve) => { h.torrent.destroy({ destroyStore: false }, () => { resolve() }) })
    }
    if (deleteData) await rm(this.downloadDir(infoHash), { recursive: true, force: true })
  }

  pauseAll (): void { for (const h of this.#handles.values()) if (!h.torrent.done) h.torrent.pause() }
  resumeAll (): void { for (const h of this.#handles.values()) h.torrent.resume() }

  peers (): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const [infoHash, h] of this.#handles) {
      for (const w of h.torrent.wires) {
        out.push({
          infoHash,
          address: peerKey(h.torrent, w),
          type: w.type, downloaded: w.downloaded, uploaded: w.uploaded, downSpeed: w.downloadSpeed(), upSpeed: w.uploadSpeed()
        })
      }
    }
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await new Promise<void>((resolve) => { this.client.destroy(() => { resolve() }) })
  }
}
