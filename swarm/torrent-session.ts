import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { ImgdistError } from '../lib/errors.js'
import { BLOCK_LENGTH, hasBit } from '../lib/peer-wire.js'
import type { ParsedTorrent } from '../lib/torrent-meta.js'
import type { PeerConn, PeerSession } from './peer-conn.js'
import { blockKey, PiecePicker, type PendingPiece } from './piece-picker.js'
import type { PieceStore } from './piece-store.js'
import { RateMeter, type TokenBucket } from './rate-meter.js'
import { PrefixHasher } from './prefix-hasher.js'
import { isForeignSeed, OriginShare } from './origin-share.js'
import { takeBack } from './take-back.js'
import { admit, serve, type UploadDeps } from './upload.js'
import { WebSeed } from './web-seed.js'
import { pumpWebSeeds, type WebSeedHost } from './web-seed-pump.js'

/**
 * One torrent: its peers, what to ask each for, the sha1 of every piece, what to serve, and
 * when it is done. Peers that send pieces failing sha1 are banned (a sole sender at once, a
 * co-sender at its second strike); so are web seeds. See docs/agent.md "The BitTorrent engine".
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
}

/**
 * No block from anyone for this long while pieces are missing: every source may be asked for
 * anything, one piece at a time from a share-only seed (the origin) so that a stall costs at
 * most a piece of duplicate origin upload.
 */
const STARVING_MS = 3000
/**
 * Requests outstanding this long with nothing delivered: the peer is snubbed, its requests are
 * cancelled and go elsewhere, and it is asked again after the same time. webtorrent 2.8.5 (the
 * index server's seeder) loses a request for a block that was re-requested after a choke while
 * its disk read of the first request was still in flight (bittorrent-protocol `_pull` matches
 * the new request); the cancel clears its queue so that the next attempt is answered.
 */
const SNUB_MS = 5000
/**
 * Verified pieces waiting for their disk write, beyond which no new requests go out. Loopback
 * peers deliver faster than the page cache takes writes once dirty pages pile up, and each
 * waiting piece is a buffer in memory: without this bound the engine alone grew to 240–790 MiB of RSS in a 2 GiB loopback download (bench/engine-pair.ts).
 */
const WRITE_BACKLOG_BYTES = 16 * 1024 * 1024
export const BOTH_SEEDS = 'both sides are seeds'

export class TorrentHandle implements PeerSession {
  readonly infoHash: string
  readonly torrent: ParsedTorrent
  readonly counters: TorrentCounters = { bytesFromPeers: 0, bytesFromWebSeeds: 0, uploaded: 0, hashFailures: 0, bannedPeers: [], resumedBytes: 0 }
  readonly done: Promise<void>
  readonly picker: PiecePicker
  readonly peers = new Set<PeerConn>()
  readonly banned = new Set<string>()
  readonly bannedIds = new Set<string>()
  readonly webSeeds: WebSeed[]
  paused = false
  destroyed = false
  ready = false
  readonly #deps: SessionDeps
  readonly #log: Logger
  readonly #trace: boolean
  readonly #down = new RateMeter()
  readonly #up = new RateMeter()
  readonly #strikes = new Map<string, number>()
  readonly #abort = new AbortController()
  readonly #upload: UploadDeps
  readonly #webSeedHost: WebSeedHost
  #store: PieceStore | undefined
  readonly #share: OriginShare
  #hasher: PrefixHasher | undefined
  /** pieces on disk (verified and their write completed), and how many lead the file without a gap */
  #written: Uint8Array
  #writtenPrefix = 0
  #lastBlockAt = Date.now()
  #resolve!: () => void
  #reject!: (err: Error) => void
  #settled = false
  #finishing = false

  constructor (torrent: ParsedTorrent, webSeeds: string[], deps: SessionDeps) {
    this.torrent = torrent
    this.infoHash = torrent.infoHash
    this.#deps = deps
    this.#log = deps.log.child({ infoHash: torrent.infoHash })
    // optional call: fastify's logger is a no-op object when logging is off (index server tests)
    this.#trace = this.#log.isLevelEnabled?.('trace') ?? false
    this.picker = new PiecePicker(torrent.length, torrent.pieceLength)
    this.#share = new OriginShare(deps.peerId, this.picker, this.peers, (seed) => this.#refill(seed))
    this.webSeeds = webSeeds.map((u) => new WebSeed(u, torrent.name))
    this.#written = new Uint8Array(this.picker.count)
    this.#upload = {
      log: this.#log,
      bucket: deps.upload,
      hasPiece: (i) => this.picker.hasPiece(i),
      store: () => this.#store,
      stopped: () => this.destroyed,
      sent: (bytes) => { this.counters.uploaded += bytes; this.#up.add(bytes) }
    }
    this.#webSeedHost = this.#webSeedHostOf()
    this.done = new Promise<void>((resolve, reject) => { this.#resolve = resolve; this.#reject = reject })
    this.done.catch(() => {})
  }

  get pieceCount (): number { return this.picker.count }
  pieceSize (i: number): number { return this.picker.pieceSize(i) }
  get complete (): boolean { return this.ready && this.picker.complete }
  get progress (): number { return this.picker.haveBytes / this.torrent.length }

  get downloadSpeed (): number { return this.#down.rate() }
  get uploadSpeed (): number { return this.#up.rate() }
  get numPeers (): number { return this.peers.size }

  /** Opens the file and hash-checks what is already there (a resume); then peers may be attached. */
  /** `verified`: the file is complete and known good (an origin seed); its pieces are not hash-checked. */
  async start (store: PieceStore, verified = false): Promise<void> {
    this.#store = store
    this.picker.alloc = (length) => store.pool.take(length)
    try {
      if (verified) {
        for (let i = 0; i < this.picker.count; i++) this.picker.markHave(i)
        this.#written.fill(1)
      } else {
        this.counters.resumedBytes = await store.scan((i) => { this.picker.markHave(i); this.#written[i] = 1 }, this.#abort.signal)
      }
    } catch (err) {
      this.#fail(new ImgdistError('IO_ERROR', `${store.path}: ${(err as Error).message}`, { cause: err }))
      return
    }
    this.ready = true
    // A download hashes as it goes; a torrent complete on disk (seeding a cached image) only if asked.
    if (!this.picker.complete) this.#advanceHash()
    this.#pumpWebSeeds(true)
    if (this.counters.resumedBytes > 0) this.#log.info({ resumedBytes: this.counters.resumedBytes }, 'pieces already on disk kept')
    this.#checkDone()
  }

  /**
   * Whether a connection whose handshake just came may join. Two peers that learn of each other at
   * once dial each other; if each end kept the connection it saw first, each could close the one
   * the other kept, again on every retry (seen in the bench: agents reached the origin only after
   * 3–4 s). Both ends therefore keep the connection opened by the smaller peer id.
   */
  canAccept (peerId: Buffer, key: string, outgoing: boolean): boolean {
    if (!this.ready || this.destroyed) return false
    if (this.banned.has(key) || this.bannedIds.has(peerId.toString('hex'))) return false
    const dup = [...this.peers].find((p) => p.peerId?.equals(peerId) === true)
    if (dup === undefined) return this.peers.size < this.#deps.maxConns
    if (dup.incoming !== outgoing) return false // the same side opened both: keep the first
    const opener = outgoing ? this.#deps.peerId : peerId
    if (Buffer.compare(opener, outgoing ? peerId : this.#deps.peerId) > 0) return false
    dup.destroy('duplicate connection: keeping the one opened by the smaller peer id')
    return true
  }

  attach (peer: PeerConn): void {
    this.peers.add(peer)
    peer.attach(this, this.picker.have, this.picker.haveCount)
    // Now, not when its bitfield comes: a peer with no pieces yet sends none (BEP 3), and a
    // downloader missing from the share would leave its share of the origin's pieces to others twice.
    this.#share.update()
  }

  // ---- PeerSession: what a connection reports ----

  onPeerBits (peer: PeerConn): void {
    this.picker.addPeerBits(peer.bits, 1, isForeignSeed(peer))
    if (peer.isSeed && this.picker.complete) { peer.destroy(BOTH_SEEDS); return }
    if (!isForeignSeed(peer)) this.#share.leaveToSwarm((i) => hasBit(peer.bits, i))
    this.#share.update()
    this.#updateInterest(peer)
    this.#refill(peer)
  }

  onPeerHave (peer: PeerConn, i: number): void {
    this.picker.addHave(i)
    if (isForeignSeed(peer)) this.picker.foreignSeeds++
    else {
      this.#share.leaveToSwarm((j) => j === i)
      // The first agent to hold a piece of the origin's: maybe the last one, and the origin's spare upload is ours to ask for.
      if (this.picker.avail[i] === this.picker.foreignSeeds + 1 && this.picker.seedIdle()) this.#refillForeignSeeds()
    }
    if (peer.isSeed) {
      if (this.picker.complete) { peer.destroy(BOTH_SEEDS); return }
      this.#share.update()
    }
    if (!this.picker.hasPiece(i)) { peer.setInterested(!this.paused); this.#refill(peer) }
  }

  onPeerChoke (peer: PeerConn, choked: boolean): void {
    this.#log.debug({ peer: peer.key, choked, requested: peer.requested.size }, 'peer choke state')
    if (choked) this.#release(peer, false)
    else this.#refill(peer)
  }

  onPeerInterest (peer: PeerConn): void { admit(peer, this.peers) }

  onPeerRequest (peer: PeerConn): void { if (!peer.serving) void serve(peer, this.#upload) }

  onPeerBlock (peer: PeerConn, index: number, begin: number, block: Buffer): void {
    this.counters.bytesFromPeers += block.length
    this.#down.add(block.length)
    this.#lastBlockAt = Date.now()
    const p = this.picker.pending.get(index)
    const doubled = p !== undefined && (p.reqCount[begin / BLOCK_LENGTH] ?? 0) > 1
    const r = this.picker.receive(index, begin, block, peer.key)
    if (r === 'dup') peer.wastedBytes += block.length
    if (r === 'bad') { peer.destroy(`sent block ${index}/${begin} of ${block.length} bytes, not what was asked`); return }
    if (doubled || typeof r === 'object') this.#cancelElsewhere(peer, index, typeof r === 'object' ? undefined : begin)
    if (typeof r === 'object') this.#pieceDone(r)
    this.#refill(peer)
  }

  /** set by the swarm: when to dial an address again */
  onPeerGone: (key: string, reason: string) => void = () => {}

  onPeerClose (peer: PeerConn, reason: string): void {
    if (!this.peers.delete(peer)) return
    this.onPeerGone(peer.key, reason)
    this.picker.addPeerBits(peer.bits, -1, isForeignSeed(peer))
    this.#release(peer, false)
    this.#share.update()
    this.#log.debug({ peer: peer.key, reason }, 'peer gone')
  }

  // ---- timers (the swarm calls tick() every second) ----

  tick (now = Date.now()): void {
    if (this.destroyed || !this.ready) return
    for (const peer of this.peers) {
      if (now - peer.lastReceived > 180_000) { peer.destroy('silent for 3 minutes'); continue }
      if (peer.snubbed && now - peer.lastBlockAt > 2 * SNUB_MS) { peer.snubbed = false; peer.lastBlockAt = now }
      if (now - peer.lastSent > 60_000) peer.keepAlive()
      if (peer.requested.size > 0 && now - peer.lastBlockAt > SNUB_MS) {
        this.#log.debug({ peer: peer.key, requested: peer.requested.size, choked: peer.peerChoking, interested: peer.amInterested, blocks: [...peer.requested.values()].map((r) => `${r.index}/${r.begin}`).join(' ') }, 'peer snubbed')
        peer.snubbed = true
        this.#release(peer, true)
      }
    }
    const starving = this.#starving(now)
    for (const peer of this.peers) if (starving || peer.requested.size === 0) this.#refill(peer)
    this.#pumpWebSeeds(starving)
  }

  pause (): void {
    this.paused = true
    for (const peer of this.peers) { this.#release(peer, true); peer.setInterested(false) }
  }

  resume (): void {
    this.paused = false
    for (const peer of this.peers) { this.#updateInterest(peer); this.#refill(peer) }
  }

  peerInfo (): Array<{ address: string, type: string, downloaded: number, uploaded: number, downSpeed: number, upSpeed: number }> {
    const out = [...this.peers].map((p) => ({
      address: p.key, type: p.incoming ? 'tcpIncoming' : 'tcpOutgoing', downloaded: p.down.total, uploaded: p.up.total, downSpeed: p.down.rate(), upSpeed: p.up.rate()
    }))
    for (const w of this.webSeeds) if (!w.banned && w.downloaded > 0) out.push({ address: w.url, type: 'webSeed', downloaded: w.downloaded, uploaded: 0, downSpeed: 0, upSpeed: 0 })
    return out
  }

  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    this.#abort.abort()
    for (const peer of [...this.peers]) peer.destroy('torrent removed')
    await this.#hasher?.close()
    await this.#store?.close()
    this.#fail(new ImgdistError('ABORTED', 'torrent removed'))
  }

  /** sha512 of the whole file as on disk: ready soon after `done` for a download (hashed as pieces landed) */
  async sha512 (): Promise<string> {
    if (!this.picker.complete) throw new ImgdistError('INTERNAL', 'sha512 asked of an incomplete torrent')
    this.#advanceHash()
    return await (this.#hasher as PrefixHasher).digest
  }

  // ---- internals ----

  #advanceHash (): void {
    if (this.destroyed || this.#store === undefined) return
    this.#hasher ??= new PrefixHasher(this.#store.path, this.torrent.length)
    while (this.#writtenPrefix < this.picker.count && this.#written[this.#writtenPrefix] === 1) this.#writtenPrefix++
    this.#hasher.advance(this.#writtenPrefix * this.torrent.pieceLength)
  }

  #writeBound (): number { return Math.max(WRITE_BACKLOG_BYTES, 2 * this.torrent.pieceLength) }

  #starving (now: number): boolean {
    return !this.paused && !this.picker.complete && now - this.#lastBlockAt > STARVING_MS
  }

  /** The share rule (piece-picker.ts) applies to seeds that are not imgdist agents, unless we are starving. */
  #shareOnly (peer: PeerConn): boolean { return isForeignSeed(peer) && !this.#starving(Date.now()) }

  #updateInterest (peer: PeerConn): void {
    if (this.paused || this.picker.complete) { peer.setInterested(false); return }
    const ours = this.picker.have
    for (let b = 0; b < peer.bits.length; b++) {
      if (((peer.bits[b] as number) & ~(ours[b] as number) & 0xff) !== 0) { peer.setInterested(true); return }
    }
    peer.setInterested(false)
  }

  #refill (peer: PeerConn): void {
    if (this.paused || this.destroyed || peer.closed || peer.peerChoking || !peer.amInterested || peer.snubbed || this.picker.complete) return
    if ((this.#store?.backlog ?? 0) > this.#writeBound()) return // the write that brings it down refills
    // Keep about half a second of this peer's rate in flight, between 512 KiB and 4 MiB. But
    // toward an origin we share with other agents, the same 512 KiB for everyone: the origin's
    // uplink goes to its connections about in proportion to what each has asked for, so a depth
    // that grows with the rate fed itself. The agent that started first kept the deepest queue,
    // took 31 of 128 pieces (against 8 for another) and then had more to relay than it could.
    const depth = isForeignSeed(peer) && this.#share.sharing ? 32 : Math.max(32, Math.min(256, Math.ceil(peer.down.rate() / 2 / 16384)))
    let room = depth - peer.requested.size
    if (room < Math.min(16, depth / 2)) return
    if (isForeignSeed(peer) && this.#starving(Date.now())) room = Math.min(room, Math.ceil(this.torrent.pieceLength / BLOCK_LENGTH))
    if (this.#deps.download.limit > 0) {
      const wait = this.#deps.download.take(room * 16384)
      if (wait > 0) return // tick() retries
    }
    const reqs = this.picker.pick({ bits: peer.bits, shareOnly: this.#shareOnly(peer), requested: peer.requested }, room)
    if (reqs.length === 0) return
    if (this.#trace) this.#log.trace({ peer: peer.key, pieces: [...new Set(reqs.map((r) => r.index))], blocks: reqs.length }, 'requested')
    peer.socket.cork()
    for (const r of reqs) peer.request(r, blockKey(r.index, r.begin))
    peer.socket.uncork()
  }

  #refillForeignSeeds (): void { for (const seed of this.peers) if (isForeignSeed(seed)) this.#refill(seed) }

  /** Hands a peer's outstanding requests back to the picker (with cancels when the peer is still there). */
  #release (peer: PeerConn, sendCancel: boolean): void { takeBack(peer, this.picker, () => true, sendCancel) }

  /** A piece (or one block of it) arrived: the requests for it elsewhere are cancelled. */
  #cancelElsewhere (from: PeerConn | undefined, index: number, begin: number | undefined): void {
    for (const other of this.peers) {
      if (other !== from) takeBack(other, this.picker, (r) => r.index === index && (begin === undefined || r.begin === begin))
    }
  }

  #pieceDone (p: PendingPiece): void {
    const buf = p.buf as Buffer
    const store = this.#store as PieceStore
    const good = store.verify(p.index, buf)
    this.picker.settle(p, good)
    if (!good) {
      store.pool.retire(buf)
      this.counters.hashFailures++
      this.#blame(p.from, p.index)
      return
    }
    if (this.#trace) this.#log.trace({ piece: p.index, from: [...p.from] }, 'piece verified')
    store.write(p.index, buf).then(() => {
      this.#written[p.index] = 1
      this.#advanceHash()
      // This write took the backlog back under the bound: requests stopped, so start them again.
      const bound = this.#writeBound()
      if (store.backlog <= bound && store.backlog + p.length > bound) for (const peer of this.peers) this.#refill(peer)
    }, (err: Error) => { this.#fail(err) })
    for (const peer of this.peers) {
      peer.sendHave(p.index)
      if (!hasBit(peer.bits, p.index)) continue
      if (peer.amInterested) this.#updateInterest(peer)
    }
    this.#checkDone()
  }

  /** A sole sender of a bad piece is banned at once; a co-sender after two strikes. */
  #blame (senders: Set<string>, index: number): void {
    for (const key of senders) {
      const strikes = (this.#strikes.get(key) ?? 0) + 1
      this.#strikes.set(key, strikes)
      if (senders.size > 1 && strikes < 2) continue
      if (this.banned.has(key)) continue
      this.banned.add(key)
      this.counters.bannedPeers.push(key)
      this.#log.warn({ peer: key, piece: index }, 'peer sent a piece that failed its sha1: disconnected and banned')
      for (const w of this.webSeeds) if (w.url === key) w.ban()
      for (const peer of this.peers) {
        if (peer.key !== key) continue
        if (peer.peerId !== undefined) this.bannedIds.add(peer.peerId.toString('hex'))
        peer.destroy('banned: sent a piece that failed sha1')
      }
    }
  }

  #checkDone (): void {
    if (!this.ready || !this.picker.complete || this.#finishing) return
    this.#finishing = true
    const sources: Record<string, number> = {}
    const wasted: Record<string, number> = {}
    for (const peer of this.peers) {
      if (peer.down.total > 0) sources[peer.key] = peer.down.total
      if (peer.wastedBytes > 0) wasted[peer.key] = peer.wastedBytes
    }
    this.#log.info({ sources, wasted, webSeeds: this.counters.bytesFromWebSeeds, resumed: this.counters.resumedBytes }, 'bytes received per connected source')
    for (const peer of [...this.peers]) {
      if (peer.isSeed) peer.destroy(BOTH_SEEDS)
      else peer.setInterested(false)
    }
    void (this.#store as PieceStore).flush().then(() => {
      if (this.#settled) return
      this.#settled = true
      this.#log.info('all pieces verified and written')
      this.#resolve()
    })
  }

  #fail (err: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#reject(err)
  }

  #pumpWebSeeds (starving: boolean): void {
    if (this.paused || this.picker.complete || this.destroyed) return
    pumpWebSeeds(this.#webSeedHost, starving || this.peers.size === 0)
  }

  #webSeedHostOf (): WebSeedHost {
    return {
      picker: this.picker,
      webSeeds: this.webSeeds,
      pieceLength: this.torrent.pieceLength,
      log: this.#log,
      dispatcher: this.#deps.dispatcher,
      signal: this.#abort.signal,
      stopped: () => this.destroyed,
      received: (bytes) => { this.counters.bytesFromWebSeeds += bytes; this.#lastBlockAt = Date.now() },
      complete: (p, buf, from) => {
        this.#cancelElsewhere(undefined, p.index, undefined)
        if (p.buf !== undefined) this.#store?.pool.retire(p.buf)
        p.buf = buf
        p.state.fill(2)
        p.received = p.blocks
        p.from = new Set([from])
        this.#pieceDone(p)
      }
    }
  }
}
