import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import type { Client as DHT } from 'bittorrent-dht'
import type { Logger } from 'pino'
import Discovery from 'torrent-discovery'
import type { Dispatcher } from 'undici'
import { PEER_ID_PREFIX } from '../lib/peer-wire.js'
import { joinHostPort } from '../lib/host-port.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { BOTH_SEEDS, type PeerSource } from './peer-conn.js'
import { Candidates, connectedTo } from './candidates.js'
import { Connector, type DialTarget } from './connector.js'
import { HANDSHAKE_TIMEOUT_MS } from './handshake-deadline.js'
import { dhtCatchUp } from './dht-catch-up.js'
import { dhtInfo, startDhtNode } from './dht-node.js'
import { PieceStore } from './piece-store.js'
import { TokenBucket } from './rate-meter.js'
import { TorrentHandle } from './torrent-session.js'
import type { SourceInfo } from './peer-info.js'

/**
 * The BitTorrent engine of the agents and of the index server's origin seed (docs/agent-engine.md): one
 * listening TCP port for every torrent, peers found by tracker, DHT and LSD (torrent-discovery,
 * the library webtorrent itself uses) and by peer exchange (pex.ts), connections dialled and
 * accepted by connector.ts, and one TorrentHandle per torrent doing the rest. Standard
 * BitTorrent v1 on the wire (BEP 3, BEP 10 for BEP 11 peer exchange, BEP 19 web seeds), so
 * aria2c, libtorrent, transmission and webtorrent peers interoperate.
 */

export interface SwarmOptions {
  dataDir: string
  torrentPort: number
  dht: { enabled: boolean, bootstrap: string[], port?: number | undefined }
  lsd: boolean
  /** peer exchange (BEP 11) with peers that offer it; never for private torrents */
  pex: boolean
  trackers: string[]
  uploadLimit: number
  downloadLimit: number
  maxConns: number
  /**
   * The first 8 bytes of our peer id. Agents use PEER_ID_PREFIX, which other agents recognise as a
   * fellow agent; the origin seed must use another (ORIGIN_PEER_ID_PREFIX), so that agents apply
   * the share rule to it (torrent-session.ts).
   */
  peerIdPrefix?: string
  /** how long a connection may take to complete the handshake (handshake-deadline.ts); default 10 s, tests change it */
  handshakeTimeoutMs?: number
  /** copies of each torrent sent while other peers could send them instead (egress-budget.ts); the origin's option, 0 or undefined: no limit */
  egressBudget?: number
  /**
   * With a budget: how many seeds of a torrent other than us (`ownPeerId`, hex) our tracker knows
   * of, connected or not. The origin asks its own tracker (index-server/tracker.ts).
   */
  seedsElsewhere?: (infoHash: string, ownPeerId: string) => number
}

/** Options of one torrent: where its file is, and whether that file is already known good. */
export interface AddOptions {
  /** the file holding the torrent's single file; default <dataDir>/downloads/<infoHash>/<name> */
  path?: string
  /**
   * The file is complete and was verified before (the index's images are checked against the
   * signed sha512 on import; an agent's image is, when its file is unchanged since it passed):
   * seed it read-only, without hash-checking every piece at start.
   */
  verified?: boolean
}

export interface PeerInfo extends SourceInfo { infoHash: string }

interface Entry extends DialTarget { opts: AddOptions, discovery: Discovery | undefined }

export class Swarm {
  readonly peerId: Buffer
  readonly #opts: SwarmOptions
  readonly #log: Logger
  readonly #dispatcher: Dispatcher | undefined
  readonly #entries = new Map<string, Entry>()
  readonly #server: Server
  readonly #upload: TokenBucket
  readonly #download: TokenBucket
  #dht: DHT | undefined
  #stopCatchUp: (() => void) | undefined
  readonly #timer: NodeJS.Timeout
  readonly #listening: Promise<number>
  readonly #connector: Connector
  #closed = false
  #port: number | undefined

  constructor (opts: SwarmOptions, log: Logger, dispatcher?: Dispatcher) {
    this.#opts = opts
    this.peerId = Buffer.concat([Buffer.from(opts.peerIdPrefix ?? PEER_ID_PREFIX, 'latin1').subarray(0, 8), randomBytes(12)])
    this.#log = log
    this.#connector = new Connector({
      peerId: this.peerId, log, maxConns: opts.maxConns, handshakeMs: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      port: () => this.#port, target: (infoHash) => this.#entries.get(infoHash)
    })
    this.#dispatcher = dispatcher
    this.#upload = new TokenBucket(opts.uploadLimit)
    this.#download = new TokenBucket(opts.downloadLimit)
    this.#server = createServer({ pauseOnConnect: true }, (socket) => { this.#connector.accept(socket) })
    this.#listening = new Promise<number>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(opts.torrentPort, () => {
        this.#server.off('error', reject)
        this.#server.on('error', (err) => { log.error({ err: err.message }, 'torrent port error') })
        this.#port = (this.#server.address() as { port: number }).port
        resolve(this.#port)
      })
    })
    this.#listening.catch(() => {})
    if (opts.dht.enabled) {
      // UDP on the torrent port's number unless configured otherwise, as other clients do: one
      // firewall rule opens both, and the index server's node is a bootstrap node at a known
      // address. So the node is made once that number is known (dht-node.ts says why not before).
      const start = (port: number): void => {
        this.#dht = startDhtNode(port, opts.dht.bootstrap, log)
        this.#stopCatchUp = dhtCatchUp(this.#dht, {
          // BEP 27: a private torrent is never announced on the DHT
          infoHashes: () => [...this.#entries.values()].filter((e) => !e.handle.torrent.private).map((e) => e.handle.infoHash),
          port: () => this.#port,
          onAnnounce: (infoHash, addr) => { this.addPeer(infoHash, addr, 'dht') }
        })
      }
      if (opts.dht.port !== undefined) start(opts.dht.port)
      else this.#listening.then((port) => { if (!this.#closed) start(port) }, () => {})
    }
    this.#timer = setInterval(() => { this.#tick() }, 1000)
    this.#timer.unref()
  }

  async listening (): Promise<number> { return await this.#listening }
  /** the torrent port, once listening */
  get port (): number | undefined { return this.#port }

  /** the DHT node: its UDP port once bound, and how many nodes its routing table holds; undefined when the DHT is off */
  get dht (): { port?: number, nodes: number } | undefined { return this.#dht !== undefined ? dhtInfo(this.#dht) : undefined }

  downloadDir (infoHash: string): string { return join(this.#opts.dataDir, 'downloads', infoHash) }

  get (infoHash: string): TorrentHandle | undefined { return this.#entries.get(infoHash)?.handle }
  torrents (): TorrentHandle[] { return [...this.#entries.values()].map((e) => e.handle) }

  get downloadSpeed (): number { let s = 0; for (const e of this.#entries.values()) s += e.handle.downloadSpeed; return s }
  get uploadSpeed (): number { let s = 0; for (const e of this.#entries.values()) s += e.handle.uploadSpeed; return s }

  /** Adds a .torrent whose info hash was checked against the signed one; pieces already on disk are hash-checked, not re-fetched. */
  add (infoHash: string, torrentBytes: Uint8Array, webSeeds: string[], opts: AddOptions = {}): TorrentHandle {
    const existing = this.#entries.get(infoHash)
    if (existing !== undefined) return existing.handle
    const torrent = parseTorrent(torrentBytes, { infoHash })
    const handle = new TorrentHandle(torrent, webSeeds, {
      peerId: this.peerId, log: this.#log, upload: this.#upload, download: this.#download, dispatcher: this.#dispatcher, maxConns: this.#opts.maxConns,
      pex: this.#opts.pex, listenPort: () => this.#port, egressBudget: this.#opts.egressBudget,
      seedsElsewhere: this.#seedsElsewhere(infoHash)
    })
    const dialing = new Set<string>()
    const entry: Entry = { handle, opts, discovery: undefined, candidates: new Candidates((addr) => dialing.has(addr) || connectedTo(handle.peers, addr)), dialing }
    // Not straight back: a peer that just went away is dialled again after 10 s, a fellow seed after 5 minutes.
    handle.onPeerGone = (key, reason) => {
      const c = entry.candidates.get(key)
      if (c !== undefined) c.nextAt = Date.now() + (reason === BOTH_SEEDS ? 300_000 : 10_000)
    }
    handle.onPexPeer = (addr, via) => { this.#connector.found(entry, addr, 'pex', via) }
    this.#entries.set(infoHash, entry)
    void this.#start(entry)
    return handle
  }

  async #start (e: Entry): Promise<void> {
    const h = e.handle
    try {
      const path = e.opts.path ?? join(this.downloadDir(h.infoHash), h.torrent.name)
      const store = await PieceStore.open(path, h.torrent.length, h.torrent.pieceLength, h.torrent.pieces, { readOnly: e.opts.verified === true })
      await h.start(store, e.opts.verified === true)
      if (h.destroyed) return
      const port = await this.#listening
      const announce = [...new Set([...h.torrent.announce, ...this.#opts.trackers])]
      const d = new Discovery({
        infoHash: h.infoHash,
        peerId: this.peerId.toString('hex'),
        port,
        announce,
        // BEP 27: a private torrent's peers come from its trackers only
        dht: h.torrent.private ? false : this.#dht ?? false,
        lsd: this.#opts.lsd && !h.torrent.private,
        tracker: announce.length > 0 ? { getAnnounceOpts: () => ({ uploaded: h.counters.uploaded, downloaded: h.counters.bytesFromPeers + h.counters.bytesFromWebSeeds, left: Math.round(h.torrent.length * (1 - h.progress)) }) } : false
      })
      d.on('peer', (peer: string | { host?: string, ip?: string, port: number }, source?: string) => {
        const addr = typeof peer === 'string' ? peer : joinHostPort(peer.host ?? peer.ip ?? '', peer.port)
        this.#connector.found(e, addr, source === 'dht' || source === 'lsd' ? source : 'tracker')
      })
      d.on('warning', (err: Error) => { this.#log.debug({ infoHash: h.infoHash, err: err.message }, 'discovery warning') })
      d.on('error', (err: Error) => { this.#log.warn({ infoHash: h.infoHash, err: err.message }, 'discovery error') })
      e.discovery = d
      h.done.then(() => { if (!h.destroyed) d.complete() }, () => {})
    } catch (err) {
      this.#log.error({ infoHash: h.infoHash, err: (err as Error).message }, 'cannot start torrent')
      await h.destroy().catch(() => {})
    }
  }

  /** Dials a known peer directly (host:port), as a tracker answer would; for tests and operators' tools. */
  addPeer (infoHash: string, addr: string, source: PeerSource = 'manual'): void {
    const e = this.#entries.get(infoHash)
    if (e !== undefined) this.#connector.found(e, addr, source)
  }

  #seedsElsewhere (infoHash: string): (() => number) | undefined {
    const ask = this.#opts.seedsElsewhere
    return ask === undefined ? undefined : () => ask(infoHash, this.peerId.toString('hex'))
  }

  #tick (): void {
    const now = Date.now()
    for (const e of this.#entries.values()) {
      e.handle.tick(now)
      this.#connector.dialDue(e, now)
    }
  }

  /** Stops seeding; with `deleteData` the downloaded pieces are removed from disk too. */
  async remove (infoHash: string, deleteData: boolean): Promise<void> {
    const e = this.#entries.get(infoHash)
    this.#entries.delete(infoHash)
    if (e !== undefined) {
      e.discovery?.destroy()
      await e.handle.destroy()
    }
    if (deleteData) await rm(this.downloadDir(infoHash), { recursive: true, force: true })
  }

  pauseAll (): void { for (const e of this.#entries.values()) if (!e.handle.complete) e.handle.pause() }
  resumeAll (): void { for (const e of this.#entries.values()) e.handle.resume() }

  peers (): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const [infoHash, e] of this.#entries) for (const p of e.handle.peerInfo()) out.push({ infoHash, ...p })
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    const closing = new Promise<void>((resolve) => { this.#server.close(() => { resolve() }) })
    this.#connector.close()
    await Promise.all([...this.#entries.keys()].map(async (k) => { await this.remove(k, false) }))
    await closing
    this.#stopCatchUp?.()
    if (this.#dht !== undefined) await new Promise<void>((resolve) => { this.#dht?.destroy(() => { resolve() }) })
  }
}
