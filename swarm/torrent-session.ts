import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { ImgdistError } from '../lib/errors.js'
import { BLOCK_LENGTH } from '../lib/peer-wire.js'
import type { ParsedTorrent } from '../lib/torrent-meta.js'
import { joinHostPort } from '../lib/host-port.js'
import { encodeExtendedHandshake, type PexMessage } from '../lib/peer-extension.js'
import { Completion } from './completion.js'
import type { PeerConn, PeerSession } from './peer-conn.js'
import { MAX_QUEUED_REQUESTS } from './peer-messages.js'
import { pexRound } from './pex.js'
import { PeerGate } from './peer-gate.js'
import { EgressBudget } from './egress-budget.js'
import { PiecePicker, type BlockRequest } from './piece-picker.js'
import type { PieceStore } from './piece-store.js'
import { RateMeter, type TokenBucket } from './rate-meter.js'
import { isForeignSeed } from './origin-share.js'
import { Requester } from './requester.js'
import { admit, serve, type UploadDeps } from './upload.js'
import { WebSeed } from './web-seed.js'
import { WrittenPieces } from './written-pieces.js'
import { sourceInfo, type SourceInfo } from './peer-info.js'
import { pumpWebSeeds, type WebSeedHost } from './web-seed-pump.js'
import { takePex } from './pex-intake.js'

/** the `v` of our extended handshake: what other clients show for us */
const CLIENT = 'imgdist 0.1'

/**
 * One torrent: what each peer event means for the picker, the requests (requester.ts) and the
 * origin share, and what to serve. A whole piece's sha1 verdict and the torrent's `done` are
 * completion.ts; senders of pieces that fail sha1 are banned (peer-gate.ts), web seeds too. See
 * docs/agent-engine.md.
 */

export interface TorrentCounters {
  bytesFromPeers: number
  bytesFromWebSeeds: number
  uploaded: number
  hashFailures: number
  bannedPeers: string[]
  /** piece bytes verified from disk when the torrent was (re-)added: what a resume saved */
  resumedBytes: number
}

export interface SessionDeps {
  peerId: Buffer
  log: Logger
  upload: TokenBucket
  download: TokenBucket
  dispatcher?: Dispatcher | undefined
  maxConns: number
  /** peer exchange (BEP 11) on; off anyway for a private torrent (BEP 27) */
  pex: boolean
  /** our torrent port, for the extended handshake's `p` */
  listenPort: () => number | undefined
  /** copies of the torrent we send while other peers could send them instead (egress-budget.ts); 0 or undefined: no limit */
  egressBudget?: number | undefined
  /** seeds of this torrent other than us that our tracker knows of (egress-budget.ts), if known */
  seedsElsewhere?: (() => number) | undefined
}

export class TorrentHandle implements PeerSession {
  readonly infoHash: string
  readonly torrent: ParsedTorrent
  readonly counters: TorrentCounters = { bytesFromPeers: 0, bytesFromWebSeeds: 0, uploaded: 0, hashFailures: 0, bannedPeers: [], resumedBytes: 0 }
  readonly done: Promise<void>
  readonly picker: PiecePicker
  readonly peers = new Set<PeerConn>()
  readonly banned: Set<string>
  readonly webSeeds: WebSeed[]
  /** what we may upload while others could (an origin's `egressBudget`), if limited */
  readonly budget: EgressBudget | undefined
  paused = false
  destroyed = false
  ready = false
  readonly #log: Logger
  readonly #trace: boolean
  readonly #down = new RateMeter()
  readonly #up = new RateMeter()
  readonly #gate: PeerGate
  readonly #abort = new AbortController()
  readonly #upload: UploadDeps
  readonly #webSeedHost: WebSeedHost
  #store: PieceStore | undefined
  readonly #req: Requester
  readonly #completion: Completion
  /** set by start(), with the store */
  #disk: WrittenPieces | undefined
  readonly #pex: boolean
  readonly #listenPort: () => number | undefined
  #extHandshake: Buffer | undefined

  /** where the pieces are, once start() ran */
  get store (): PieceStore | undefined { return this.#store }

  constructor (torrent: ParsedTorrent, webSeeds: string[], deps: SessionDeps) {
    this.torrent = torrent
    this.infoHash = torrent.infoHash
    this.#log = deps.log.child({ infoHash: torrent.infoHash })
    // optional call: fastify's logger is a no-op object when logging is off (index server tests)
    this.#trace = this.#log.isLevelEnabled?.('trace') ?? false
    this.#pex = deps.pex && !torrent.private
    this.#listenPort = deps.listenPort
    this.picker = new PiecePicker(torrent.length, torrent.pieceLength)
    this.#gate = new PeerGate(deps.peerId, deps.maxConns)
    this.banned = this.#gate.banned
    this.#req = new Requester({
      peerId: deps.peerId, picker: this.picker, peers: this.peers, download: deps.download, log: this.#log, trace: this.#trace,
      paused: () => this.paused, destroyed: () => this.destroyed, backlog: () => this.#store?.backlog ?? 0,
      discard: (p) => { this.picker.forget(p); if (p.buf !== undefined) this.#store?.pool.retire(p.buf) }
    })
    this.webSeeds = webSeeds.map((u) => new WebSeed(u, torrent.name))
    const budget = this.budget = deps.egressBudget !== undefined && deps.egressBudget > 0
      ? new EgressBudget(torrent.length, torrent.pieceLength, deps.egressBudget, { seedsElsewhere: deps.seedsElsewhere, log: this.#log })
      : undefined
    this.#upload = {
      log: this.#log, bucket: deps.upload, hasPiece: (i) => this.picker.hasPiece(i), store: () => this.#store, stopped: () => this.destroyed,
      sent: (r) => { this.counters.uploaded += r.length; this.#up.add(r.length); budget?.record(r) },
      allows: budget === undefined ? undefined : (peer, r) => budget.allows(peer, r, this.peers)
    }
    this.#webSeedHost = {
      picker: this.picker, webSeeds: this.webSeeds, pieceLength: torrent.pieceLength, log: this.#log, dispatcher: deps.dispatcher,
      signal: this.#abort.signal, stopped: () => this.destroyed,
      received: (bytes) => { this.counters.bytesFromWebSeeds += bytes; this.#req.received() },
      complete: (p, replaced) => {
        this.#req.cancelElsewhere(undefined, p.index, undefined)
        if (replaced !== undefined) this.#store?.pool.retire(replaced)
        this.#completion.pieceDone(p)
      }
    }
    this.#completion = new Completion({
      picker: this.picker, peers: this.peers, gate: this.#gate, req: this.#req, counters: this.counters, webSeeds: this.webSeeds,
      log: this.#log, trace: this.#trace
    })
    this.done = this.#completion.done
  }

  get pieceCount (): number { return this.picker.count }
  pieceSize (i: number): number { return this.picker.pieceSize(i) }
  get complete (): boolean { return this.ready && this.picker.complete }
  get progress (): number { return this.picker.haveBytes / this.torrent.length }

  get downloadSpeed (): number { return this.#down.rate() }
  get uploadSpeed (): number { return this.#up.rate() }
  get numPeers (): number { return this.peers.size }

  /**
   * Opens the file and hash-checks what is already there (a resume); then peers may be attached.
   * `verified`: the file is complete and known good (an origin seed); its pieces are not hash-checked.
   */
  async start (store: PieceStore, verified = false): Promise<void> {
    this.#store = store
    const disk = this.#disk = new WrittenPieces(store.path, this.torrent.length, this.torrent.pieceLength)
    this.picker.alloc = (length) => store.pool.take(length)
    try {
      if (verified) {
        for (let i = 0; i < this.picker.count; i++) this.picker.markHave(i)
        disk.markAll()
      } else {
        this.counters.resumedBytes = await store.scan((i) => { this.picker.markHave(i); disk.mark(i) }, this.#abort.signal)
      }
    } catch (err) {
      this.#completion.fail(new ImgdistError('IO_ERROR', `${store.path}: ${(err as Error).message}`, { cause: err }))
      return
    }
    this.ready = true
    this.#completion.open(store, disk)
    // A download hashes as it goes; a torrent complete on disk (seeding a cached image) only if asked.
    if (!this.picker.complete) disk.advance()
    this.#pumpWebSeeds(true)
    if (this.counters.resumedBytes > 0) this.#log.info({ resumedBytes: this.counters.resumedBytes }, 'pieces already on disk kept')
    this.#completion.checkDone()
  }

  /** Whether a connection whose handshake just came may join (peer-gate.ts). */
  canAccept (peerId: Buffer, key: string, outgoing: boolean): boolean {
    return this.ready && !this.destroyed && this.#gate.canAccept(this.peers, peerId, key, outgoing)
  }

  /** Whether an address (or the peer id) is refused: banned itself, or its host after several bans (peer-gate.ts). For the dialler. */
  isBanned (addr: string, peerId?: Buffer): boolean { return this.#gate.isBanned(addr, peerId) }

  attach (peer: PeerConn): void {
    this.peers.add(peer)
    this.#gate.joined(peer)
    peer.attach(this, this.picker.have, this.picker.haveCount)
    // Now, not when its bitfield comes: a peer with no pieces yet sends none (BEP 3), and a
    // downloader missing from the share would leave its share of the origin's pieces to others twice.
    this.#req.share.update()
  }

  // ---- PeerSession: what a connection reports ----

  onPeerBits (peer: PeerConn): void { this.#req.onBits(peer) }

  onPeerHave (peer: PeerConn, i: number): void { this.#req.onHave(peer, i) }

  onPeerChoke (peer: PeerConn, choked: boolean): void {
    this.#log.debug({ peer: peer.key, choked, requested: peer.requested.size }, 'peer choke state')
    if (choked) this.#req.release(peer, false)
    else this.#req.refill(peer)
  }

  onPeerReject (peer: PeerConn, r: BlockRequest): void { this.#req.rejected(peer, r) }

  onPeerInterest (peer: PeerConn): void { admit(peer, this.peers) }

  onPeerRequest (peer: PeerConn): void { if (!peer.serving) void serve(peer, this.#upload) }

  onPeerBlock (peer: PeerConn, index: number, begin: number, block: Buffer): void {
    this.counters.bytesFromPeers += block.length
    this.#down.add(block.length)
    this.#req.received()
    const p = this.picker.pending.get(index)
    const doubled = p !== undefined && (p.reqCount[begin / BLOCK_LENGTH] ?? 0) > 1
    const r = this.picker.receive(index, begin, block, peer.key)
    if (r === 'dup') peer.wastedBytes += block.length
    if (r === 'bad') { peer.destroy(`sent block ${index}/${begin} of ${block.length} bytes, not what was asked`); return }
    this.#gate.delivered(peer)
    if (p !== undefined && r !== 'dup') this.#gate.sentBlock(p, begin / BLOCK_LENGTH, peer)
    if (doubled || typeof r === 'object') this.#req.cancelElsewhere(peer, index, typeof r === 'object' ? undefined : begin)
    if (typeof r === 'object') this.#completion.pieceDone(r)
    this.#req.refill(peer)
  }

  /** set by the swarm: when to dial an address again */
  onPeerGone: (key: string, reason: string) => void = () => {}
  /** set by the swarm: an address a peer told us of (ut_pex), to dial */
  onPexPeer: (addr: string, via: string) => void = () => {}

  extendedHandshake (): Buffer {
    const port = this.#listenPort()
    if (this.#extHandshake === undefined || port === undefined) this.#extHandshake = encodeExtendedHandshake({ pex: this.#pex, port, client: CLIENT, reqq: MAX_QUEUED_REQUESTS })
    return this.#extHandshake
  }

  onPeerPex (peer: PeerConn, msg: PexMessage): void {
    if (!this.#pex) return
    // how much of one connection's gossip is taken: pex-intake.ts
    const taken = takePex(peer, msg.added, Date.now())
    if (this.#trace) this.#log.trace({ peer: peer.key, added: msg.added.length, taken: taken.length, dropped: msg.dropped.length }, 'peer exchange')
    for (const a of taken) this.onPexPeer(joinHostPort(a.host, a.port), peer.key)
  }

  onPeerClose (peer: PeerConn, reason: string): void {
    if (!this.peers.delete(peer)) return
    this.onPeerGone(peer.key, reason)
    this.picker.addPeerBits(peer.bits, -1, isForeignSeed(peer))
    this.#req.release(peer, false)
    this.#req.share.update()
    this.#log.debug({ peer: peer.key, reason }, 'peer gone')
  }

  // ---- timers (the swarm calls tick() every second) ----

  tick (now = Date.now()): void {
    if (this.destroyed || !this.ready) return
    this.#req.tick(now)
    this.#gate.tick(this.peers, now)
    this.#pumpWebSeeds(this.#req.starving(now))
    if (this.#pex) pexRound(this.peers, now)
  }

  pause (): void {
    this.paused = true
    for (const peer of this.peers) { this.#req.release(peer, true); peer.setInterested(false) }
  }

  resume (): void {
    this.paused = false
    for (const peer of this.peers) { this.#req.updateInterest(peer); this.#req.refill(peer) }
  }

  peerInfo (): SourceInfo[] { return sourceInfo(this.peers, this.webSeeds) }

  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    this.#abort.abort()
    for (const peer of [...this.peers]) peer.destroy('torrent removed')
    await this.#disk?.close()
    await this.#store?.close()
    this.#completion.fail(new ImgdistError('ABORTED', 'torrent removed'))
  }

  /** sha512 of the whole file as on disk: ready soon after `done` for a download (hashed as pieces landed) */
  async sha512 (): Promise<string> {
    if (!this.picker.complete) throw new ImgdistError('INTERNAL', 'sha512 asked of an incomplete torrent')
    if (this.#disk === undefined) throw new ImgdistError('INTERNAL', 'sha512 asked of a torrent not started')
    return await this.#disk.digest()
  }

  // ---- internals ----

  #pumpWebSeeds (starving: boolean): void {
    if (this.paused || this.picker.complete || this.destroyed) return
    pumpWebSeeds(this.#webSeedHost, starving || this.peers.size === 0)
  }
}
