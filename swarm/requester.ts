import type { Logger } from 'pino'
import { BLOCK_LENGTH, clearBit, hasBit } from '../lib/peer-wire.js'
import { BOTH_SEEDS, type PeerConn } from './peer-conn.js'
import { blockKey, type BlockRequest, type PendingPiece, type PiecePicker } from './piece-picker.js'
import { isForeignSeed, OriginShare } from './origin-share.js'
import type { TokenBucket } from './rate-meter.js'
import { takeBack } from './take-back.js'

/**
 * The download side of one torrent's peers: whether we are interested, how many block requests
 * each peer has outstanding, which requests to take back (choke, snub, a block that came from
 * elsewhere), and when a stalled download may ask anyone for anything. The picker says which
 * blocks; this says how many, of whom, and when. torrent-session.ts calls it on every event.
 */

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
/**
 * A piece a peer rejected a request for (BEP 6) is not asked of it again for this long, unless we
 * are starving: an origin over its egress budget rejects what other agents hold
 * (egress-budget.ts), and asking it again at once would only bring the next reject.
 */
export const REFUSED_MS = 10_000

/** What the requester reads of its torrent. */
export interface RequesterHost {
  peerId: Buffer
  picker: PiecePicker
  peers: ReadonlySet<PeerConn>
  download: TokenBucket
  log: Logger
  /** trace logging is on: each batch of requests is logged */
  trace: boolean
  paused: () => boolean
  destroyed: () => boolean
  /** bytes of verified pieces whose disk write has not completed */
  backlog: () => number
  /** drops a pending piece and what came of it (its buffer goes back to the pool) */
  discard: (p: PendingPiece) => void
}

/** A piece to fetch from one peer, and who that is (since when it last asked it for blocks). */
interface Alone { holder: PeerConn | undefined, at: number }

export class Requester {
  readonly share: OriginShare
  readonly #h: RequesterHost
  readonly #writeBound: number
  #lastBlockAt = Date.now()
  #refillQueued = false
  /**
   * Pieces that failed sha1 with several senders: the next copy comes from one peer, so that it
   * either passes (and the senders of blocks that differ are banned, peer-gate.ts) or fails with a
   * sole sender, who is banned. Without this a garbage co-sender failed every copy of a piece.
   */
  readonly #alone = new Map<number, Alone>()

  constructor (host: RequesterHost) {
    this.#h = host
    this.#writeBound = Math.max(WRITE_BACKLOG_BYTES, 2 * host.picker.pieceLength)
    this.share = new OriginShare(host.peerId, host.picker, host.peers, (seed) => { this.refill(seed) })
  }

  /** a block (or a web seed's bytes) came: not starving */
  received (): void { this.#lastBlockAt = Date.now() }

  starving (now = Date.now()): boolean {
    return !this.#h.paused() && !this.#h.picker.complete && now - this.#lastBlockAt > STARVING_MS
  }

  /** The share rule (piece-picker.ts) applies to seeds that are not imgdist agents, unless we are starving. */
  shareOnly (peer: PeerConn): boolean { return isForeignSeed(peer) && !this.starving() }

  /** A peer's bitfield came: availability, the origin share, our interest, and requests. */
  onBits (peer: PeerConn): void {
    const { picker } = this.#h
    const share = this.share
    picker.addPeerBits(peer.bits, 1, isForeignSeed(peer))
    if (peer.isSeed && picker.complete) { peer.destroy(BOTH_SEEDS); return }
    if (!isForeignSeed(peer)) share.leaveToSwarm((i) => hasBit(peer.bits, i))
    share.update()
    this.updateInterest(peer)
    this.refill(peer)
  }

  /** A peer has piece i now. */
  onHave (peer: PeerConn, i: number): void {
    const { picker } = this.#h
    const share = this.share
    picker.addHave(i)
    if (isForeignSeed(peer)) picker.foreignSeeds++
    else {
      share.leaveToSwarm((j) => j === i)
      // The first agent to hold a piece of the origin's: maybe the last one, and the origin's spare upload is ours to ask for.
      if (picker.avail[i] === picker.foreignSeeds + 1 && picker.seedIdle()) this.refillForeignSeeds()
    }
    if (peer.isSeed) {
      if (picker.complete) { peer.destroy(BOTH_SEEDS); return }
      share.update()
    }
    // interest without the full bitfield scan of updateInterest(): the peer has a piece we lack
    if (!picker.hasPiece(i)) { peer.setInterested(!this.#h.paused()); this.refill(peer) }
  }

  updateInterest (peer: PeerConn): void {
    const picker = this.#h.picker
    if (this.#h.paused() || picker.complete) { peer.setInterested(false); return }
    const ours = picker.have
    for (let b = 0; b < peer.bits.length; b++) {
      if (((peer.bits[b] as number) & ~(ours[b] as number) & 0xff) !== 0) { peer.setInterested(true); return }
    }
    peer.setInterested(false)
  }

  refill (peer: PeerConn): void {
    const { picker } = this.#h
    if (this.#h.paused() || this.#h.destroyed() || peer.closed || peer.peerChoking || !peer.amInterested || peer.snubbed || picker.complete) return
    if (this.#h.backlog() > this.#writeBound) return // the write that brings it down refills (written())
    // Keep about half a second of this peer's rate in flight, between 512 KiB and 4 MiB. But
    // toward an origin we share with other agents, the same 512 KiB for everyone: the origin's
    // uplink goes to its connections about in proportion to what each has asked for, so a depth
    // that grows with the rate fed itself. The agent that started first kept the deepest queue,
    // took 31 of 128 pieces (against 8 for another) and then had more to relay than it could.
    const depth = isForeignSeed(peer) && this.share.sharing ? 32 : Math.max(32, Math.min(256, Math.ceil(peer.down.rate() / 2 / 16384)))
    let room = depth - peer.requested.size
    if (room < Math.min(16, depth / 2)) return
    if (isForeignSeed(peer) && this.starving()) room = Math.min(room, Math.ceil(picker.pieceLength / BLOCK_LENGTH))
    if (this.#h.download.limit > 0) {
      const wait = this.#h.download.take(room * 16384)
      if (wait > 0) return // tick() retries
    }
    let bits = this.#alone.size === 0 ? peer.bits : this.#bitsFor(peer)
    if (peer.refused.size > 0) bits = this.#withoutRefused(peer, bits)
    const reqs = picker.pick({ bits, shareOnly: this.shareOnly(peer), requested: peer.requested }, room)
    if (reqs.length === 0) return
    if (this.#alone.size > 0) {
      const now = Date.now()
      for (const r of reqs) { const a = this.#alone.get(r.index); if (a !== undefined) { a.holder = peer; a.at = now } }
    }
    if (this.#h.trace) this.#h.log.trace({ peer: peer.key, pieces: [...new Set(reqs.map((r) => r.index))], blocks: reqs.length }, 'requested')
    peer.request(reqs)
  }

  /** Piece i failed with several senders: its next copy is fetched from one peer. */
  fetchAlone (i: number): void { this.#alone.set(i, { holder: undefined, at: 0 }) }

  /** Piece i passed: anyone may send it again (it is not asked for any more anyway). */
  fetchedAlone (i: number): void { this.#alone.delete(i) }

  /**
   * The peer's bitfield without the pieces to fetch alone that another peer holds: one that is
   * still connected and was asked for blocks of it within SNUB_MS (a snub or choke takes its
   * requests back). A holder that let go loses the piece, and what it sent is dropped, so that
   * the next sender sends it whole; a web seed fetching it keeps it.
   */
  #bitsFor (peer: PeerConn): Uint8Array {
    const { picker } = this.#h
    const now = Date.now()
    let bits: Uint8Array = peer.bits
    for (const [i, a] of this.#alone) {
      if (!hasBit(peer.bits, i) || a.holder === peer) continue
      const p = picker.pending.get(i)
      if (p === undefined) continue // nothing in flight: whoever asks first holds it
      const h = a.holder
      const holding = h !== undefined && !h.closed && (now - a.at < SNUB_MS || asked(h, p))
      if (!holding) {
        a.holder = undefined
        // No block asked of anyone (a block received keeps its reqCount, so state is what tells)
        if (!p.state.includes(1)) { this.#h.discard(p); continue }
      }
      bits = withoutPiece(bits, peer.bits, i)
    }
    return bits
  }

  /** The peer's bitfield (or `bits`, already a copy of it) without the pieces it rejected lately; none when we are starving. */
  #withoutRefused (peer: PeerConn, bits: Uint8Array): Uint8Array {
    const now = Date.now()
    const starving = this.starving(now)
    for (const [i, until] of peer.refused) {
      if (starving || until <= now) { peer.refused.delete(i); continue }
      bits = withoutPiece(bits, peer.bits, i)
    }
    return bits
  }

  /**
   * The peer rejected a request (BEP 6): the block goes back to the picker, the piece is left to
   * other peers for REFUSED_MS, and every peer is asked again once this burst of messages is read
   * (rejects come in runs, one per block).
   */
  rejected (peer: PeerConn, r: BlockRequest): void {
    this.#h.picker.unrequest(r.index, r.begin)
    peer.refused.set(r.index, Date.now() + REFUSED_MS)
    if (this.#refillQueued) return
    this.#refillQueued = true
    setImmediate(() => { this.#refillQueued = false; this.refillAll() })
  }

  refillAll (): void { for (const peer of this.#h.peers) this.refill(peer) }

  refillForeignSeeds (): void { for (const seed of this.#h.peers) if (isForeignSeed(seed)) this.refill(seed) }

  /** A piece's disk write completed: if it took the backlog back under the bound, requests stopped and start again. */
  written (length: number): void {
    const backlog = this.#h.backlog()
    if (backlog <= this.#writeBound && backlog + length > this.#writeBound) this.refillAll()
  }

  /** Hands a peer's outstanding requests back to the picker (with cancels when the peer is still there). */
  release (peer: PeerConn, sendCancel: boolean): void { takeBack(peer, this.#h.picker, () => true, sendCancel) }

  /** A piece (or one block of it) arrived: the requests for it elsewhere are cancelled. */
  cancelElsewhere (from: PeerConn | undefined, index: number, begin: number | undefined): void {
    for (const other of this.#h.peers) {
      if (other !== from) takeBack(other, this.#h.picker, (r) => r.index === index && (begin === undefined || r.begin === begin))
    }
  }

  /** Once a second: silent peers go, snubbed ones lose their requests, idle and starving ones are asked again. */
  tick (now: number): void {
    for (const peer of this.#h.peers) {
      if (now - peer.lastReceived > 180_000) { peer.destroy('silent for 3 minutes'); continue }
      if (peer.snubbed && now - peer.lastBlockAt > 2 * SNUB_MS) { peer.snubbed = false; peer.lastBlockAt = now }
      if (now - peer.lastSent > 60_000) peer.keepAlive()
      if (peer.requested.size > 0 && now - peer.lastBlockAt > SNUB_MS) {
        this.#h.log.debug({ peer: peer.key, requested: peer.requested.size, choked: peer.peerChoking, interested: peer.amInterested, blocks: [...peer.requested.values()].map((r) => `${r.index}/${r.begin}`).join(' ') }, 'peer snubbed')
        peer.snubbed = true
        this.release(peer, true)
      }
    }
    const starving = this.starving(now)
    for (const peer of this.#h.peers) if (starving || peer.requested.size === 0) this.refill(peer)
  }
}

/** whether `peer` has outstanding requests for blocks of `p` */
function asked (peer: PeerConn, p: PendingPiece): boolean {
  for (let b = 0; b < p.blocks; b++) if (peer.requested.has(blockKey(p.index, b * BLOCK_LENGTH))) return true
  return false
}

/** `bits` without piece `i`: copied from the peer's own bitfield the first time, never written into it. */
function withoutPiece (bits: Uint8Array, peerBits: Uint8Array, i: number): Uint8Array {
  const out = bits === peerBits ? Uint8Array.from(peerBits) : bits
  clearBit(out, i)
  return out
}
