import { BLOCK_LENGTH, hasBit, setBit } from '../lib/peer-wire.js'
import { OUT_OF_SHARE, pickOwn, steal } from './origin-pick.js'

/**
 * Which block to ask which peer for. Rarest first over the pieces a peer has (ties spread between
 * the agents that lack them, else to the lowest index), pieces already begun finished first, and an
 * endgame that asks a second peer for blocks still in flight once nothing else is left.
 *
 * One rule is particular to a fleet of imgdist agents fed by one origin: from a peer marked
 * `shareOnly` (a seed that is not an imgdist agent, i.e. the origin or a foreign client) we ask
 * only for pieces that no connected downloader has yet and that fall in *our share*
 * (`share(i)`, rendezvous hashing between the agents downloading, see share.ts). The agents then
 * split the origin's upload between them instead of all fetching the same rare pieces, and
 * trade the rest among themselves: that is what keeps origin egress near one copy
 * (Kumar–Ross: the origin need send each piece only once). Once it has sent each piece once
 * (`seedIdle()`), its spare upload is used like any peer's.
 */

export interface BlockRequest { index: number, begin: number, length: number }

export interface PickPeer {
  bits: Uint8Array
  shareOnly: boolean
  /** block keys (blockKey()) this peer has been asked for and not yet delivered */
  requested: { has: (key: number) => boolean }
}

export interface PendingPiece {
  index: number
  length: number
  blocks: number
  buf: Buffer | undefined
  /** per block: 0 missing, 1 requested, 2 received */
  state: Uint8Array
  /** outstanding requests per block; endgame makes it 2 */
  reqCount: Uint8Array
  received: number
  /** keys of the peers that delivered blocks of it, to blame for a bad sha1 */
  from: Set<string>
  /** a web seed's request for the whole piece (web-seed-pump.ts), cut off when the piece leaves `pending` otherwise */
  webSeedFetch?: AbortController
}

/**
 * How many of the equally rarest pieces spreading chooses among: enough that each of a few
 * agents finds one designated to it, few enough that pieces still come in about file order for
 * the sha512 of the prefix (prefix-hasher.ts).
 */
export const SPREAD_WINDOW = 16

export const MAX_BLOCKS_PER_PIECE = 1024
export function blockKey (index: number, begin: number): number { return index * MAX_BLOCKS_PER_PIECE + begin / BLOCK_LENGTH }

export class PiecePicker {
  readonly count: number
  readonly pieceLength: number
  readonly length: number
  readonly have: Uint8Array
  haveCount = 0
  haveBytes = 0
  /** connected peers holding each piece (web seeds not counted) */
  readonly avail: Uint16Array
  /** connected seeds that are not imgdist agents (the origin, other clients): a piece only they hold needs a seed */
  foreignSeeds = 0
  readonly pending = new Map<number, PendingPiece>()
  /** which pieces are ours to take from a share-only seed; replaced by the session as peers come and go */
  share: (index: number) => boolean = () => true
  /** Stealing (origin-pick.ts): of the other shares' pieces, which are ours to steal (rendezvous hashing, share.ts). */
  stealer: () => (index: number) => boolean = () => () => true
  /**
   * Whether another agent is a thief now. Then we, as an owner, take from the origin only our
   * first `stealKeep` missing pieces and leave the rest of our share to the thieves. An owner
   * that worked on up its share fetched the pieces a thief had taken, and the origin sent them
   * twice (3 of 128 pieces at the end of a bench run). The thieves leave twice as many as the
   * owner takes, so that a piece the owner's window reaches as it moves on was not just stolen.
   */
  othersSteal: () => boolean = () => false
  /**
   * Spreading: which pieces, among the first `SPREAD_WINDOW` of the equally rarest a peer offers
   * (any peer but the origin while it has pieces only it holds), are ours to ask it for (share.ts
   * spreadOf). Without it every agent took the lowest such piece, so an agent holding pieces
   * nobody else had sent each of them to all the others at once, one copy per agent from its one
   * uplink: likely why, in a 1 GiB bench run, six agents waited 30 s at the end for one that had
   * taken about 200 of the origin's pieces (others ~140). Spread, the holder sends a piece to
   * about one agent, and that agent, now a second holder, passes it on while the first sends the
   * next.
   */
  spread: () => (index: number) => boolean = () => () => true
  /** which agent's share a piece is in (any number that tells the owners apart); see share.ts */
  owner: (index: number) => number = () => 0
  /**
   * How many of an owner's missing pieces are left to it: the piece it is receiving and the one
   * its next requests are for (the request depth at the origin is about half a second of its
   * rate, well under 1 MiB for one of several agents sharing an origin; see torrent-session.ts).
   */
  stealKeep: number
  /** where a piece's buffer comes from when its first block arrives (the store's pool) */
  alloc: (length: number) => Buffer = (length) => Buffer.allocUnsafeSlow(length)
  #stolen = -1
  readonly #window = new Int32Array(SPREAD_WINDOW)
  readonly #maxPending: number

  constructor (length: number, pieceLength: number, maxPendingBytes = 256 * 1024 * 1024) {
    this.length = length
    this.pieceLength = pieceLength
    this.count = Math.ceil(length / pieceLength)
    this.have = new Uint8Array(Math.ceil(this.count / 8))
    this.avail = new Uint16Array(this.count)
    this.#maxPending = Math.max(4, Math.floor(maxPendingBytes / pieceLength))
    this.stealKeep = Math.ceil(1024 * 1024 / pieceLength) + 1
  }

  get complete (): boolean { return this.haveCount === this.count }
  pieceSize (i: number): number { return i === this.count - 1 ? this.length - i * this.pieceLength : this.pieceLength }
  hasPiece (i: number): boolean { return hasBit(this.have, i) }

  markHave (i: number): void {
    if (hasBit(this.have, i)) return
    setBit(this.have, i)
    this.haveCount++
    this.haveBytes += this.pieceSize(i)
  }

  /** a peer's bitfield arrived (+1) or the peer left (-1); `foreignSeed`: it is a seed and not an imgdist agent */
  addPeerBits (bits: Uint8Array, sign: 1 | -1, foreignSeed: boolean): void {
    for (let i = 0; i < this.count; i++) if (hasBit(bits, i)) this.avail[i] = (this.avail[i] as number) + sign
    if (foreignSeed) this.foreignSeeds += sign
  }

  addHave (i: number): void { this.avail[i] = (this.avail[i] as number) + 1 }

  /** Up to `max` requests for this peer, in the order they should be sent. */
  pick (peer: PickPeer, max: number): BlockRequest[] {
    const out: BlockRequest[] = []
    let idle: boolean | undefined
    for (const p of this.pending.values()) {
      if (out.length >= max) return out
      if (!hasBit(peer.bits, p.index)) continue
      if (peer.shareOnly && !this.needsSeed(p.index) && !(idle ??= this.seedIdle())) continue
      this.#fill(p, peer, out, max, false)
    }
    while (out.length < max && this.pending.size < this.#maxPending) {
      const i = this.#pickNew(peer)
      if (i < 0) break
      const p = this.#begin(i)
      this.#fill(p, peer, out, max, false)
    }
    // Endgame: every missing piece is in flight somewhere; ask this peer too, for blocks it was not asked for.
    // Never a share-only seed (the origin): in the 8-host bench every agent in endgame asked it for
    // the last piece, and the origin sent that piece 7 times while the agents' last pieces waited
    // behind it. What we need from the origin is already asked of it; a stalled origin is what
    // starving (torrent-session.ts) is for.
    // The blocks this call chose above are not in peer.requested yet (the caller sends them once
    // pick returns): without `chosen`, the call that began the last pieces asked this same peer for
    // them twice, and a torrent that fits in one batch was uploaded twice.
    if (out.length < max && !peer.shareOnly && this.haveCount + this.pending.size === this.count) {
      const chosen = new Set<number>()
      for (const r of out) chosen.add(blockKey(r.index, r.begin))
      for (const p of this.pending.values()) {
        if (out.length >= max) break
        if (hasBit(peer.bits, p.index)) this.#fill(p, peer, out, max, true, chosen)
      }
    }
    return out
  }

  /** A requested block will not come (choke, cancel, disconnect, timeout): it may be asked of another peer. */
  unrequest (index: number, begin: number): void {
    const p = this.pending.get(index)
    if (p === undefined) return
    const b = begin / BLOCK_LENGTH
    if (p.state[b] !== 1) return
    const n = (p.reqCount[b] as number) - 1
    p.reqCount[b] = n
    if (n === 0) p.state[b] = 0
    // A piece nobody is sending and nothing received of: forget it so that rarity chooses afresh.
    if (p.received === 0 && p.reqCount.every((c) => c === 0)) this.pending.delete(index)
  }

  /**
   * A block arrived. Returns the piece when this block completed it (the caller then verifies
   * it and calls settle()), 'dup' for a block already held, 'bad' for one never asked for or
   * of the wrong size.
   */
  receive (index: number, begin: number, block: Buffer, fromKey: string): PendingPiece | 'dup' | 'bad' | undefined {
    if (index >= this.count) return 'bad'
    const p = this.pending.get(index)
    // Late: the piece was completed (or failed) with other blocks, e.g. from a web seed.
    if (p === undefined) return 'dup'
    const b = begin / BLOCK_LENGTH
    if (!Number.isInteger(b) || b >= p.blocks || block.length !== Math.min(BLOCK_LENGTH, p.length - begin)) return 'bad'
    if (p.state[b] === 2) return 'dup'
    if (p.buf === undefined) p.buf = this.alloc(p.length)
    block.copy(p.buf, begin)
    p.state[b] = 2
    p.received++
    p.from.add(fromKey)
    if (p.received < p.blocks) return undefined
    return p
  }

  /**
   * A complete piece's sha1 was checked: it leaves `pending`, and counts as held if it passed;
   * if not, it will be chosen and fetched afresh.
   */
  settle (p: PendingPiece, good: boolean): void {
    this.forget(p)
    if (good) this.markHave(p.index)
  }

  /**
   * `p` leaves `pending`: a web seed still sending it stops (peers completed it, or it is dropped),
   * rather than bring a whole piece nobody will use.
   */
  forget (p: PendingPiece): void {
    if (this.pending.get(p.index) === p) this.pending.delete(p.index)
    p.webSeedFetch?.abort()
  }

  /** The whole piece is being fetched elsewhere (a web seed): peers leave it alone except in endgame. */
  reserve (i: number): PendingPiece {
    const p = this.#begin(i)
    p.state.fill(1)
    p.reqCount.fill(1)
    return p
  }

  /**
   * No downloader and no imgdist agent that finished holds it. A finished agent counts as a holder:
   * it serves what it has, and taking the piece from the origin again would have it sent twice
   * (seen in the bench: when the first agent finished, three others fetched its last piece from the origin).
   */
  needsSeed (i: number): boolean { return (this.avail[i] as number) - this.foreignSeeds <= 0 }

  /**
   * From the origin, our share (and stolen pieces); from anyone else, rarest first. Among equally
   * rare pieces the low indexes come first, so that the file fills from the front and the sha512
   * of its prefix can run while the rest downloads (prefix-hasher.ts); downloaders still spread
   * out, for their origin pieces come from disjoint shares and their relayed ones are spread.
   */
  #pickNew (peer: PickPeer): number {
    if (peer.shareOnly) {
      const own = pickOwn(this, peer.bits)
      if (own !== OUT_OF_SHARE) return own
      if (this.pending.has(this.#stolen)) return -1
      this.#stolen = steal(this, peer.bits)
      if (this.#stolen >= 0 || !this.seedIdle()) return this.#stolen
    }
    return this.#pickRarest(peer)
  }

  /**
   * Every piece we lack is held by a connected agent: a share-only seed (the origin) has sent
   * each piece once, and what it sends now is capacity nobody else wants. It is then asked like
   * any peer (rarest first, spread; never endgame duplicates). Without this the origin idled
   * while the agents relayed its last pieces (about 1 s of a 13 s bench run at 100 Mbit/s), and
   * an origin with a faster uplink than the agents' idled for most of the run: with origin 200
   * and agents 50 Mbit/s, every copy after the first had to cross the agents' uplinks (2.1 × the
   * Kumar–Ross bound, where the bound counts on the origin sending about 2.5 copies).
   */
  seedIdle (): boolean {
    for (let i = 0; i < this.count; i++) if (!hasBit(this.have, i) && this.needsSeed(i)) return false
    return true
  }

  /** Rarest first, spread between the agents that lack the pieces (`spread`), else the lowest index. */
  #pickRarest (peer: PickPeer): number {
    const window = this.#window
    let n = 0
    let bestAvail = Infinity
    for (let i = 0; i < this.count; i++) {
      if (hasBit(this.have, i) || this.pending.has(i) || !hasBit(peer.bits, i)) continue
      const a = this.avail[i] as number
      if (a < bestAvail) { bestAvail = a; n = 0 }
      if (a === bestAvail && n < SPREAD_WINDOW) window[n++] = i
      if (a <= 1 && n === SPREAD_WINDOW) break
    }
    if (n <= 1) return n === 1 ? window[0] as number : -1
    const mine = this.spread()
    for (let k = 0; k < n; k++) if (mine(window[k] as number)) return window[k] as number
    return window[0] as number
  }

  #begin (i: number): PendingPiece {
    const length = this.pieceSize(i)
    const blocks = Math.ceil(length / BLOCK_LENGTH)
    const p: PendingPiece = { index: i, length, blocks, buf: undefined, state: new Uint8Array(blocks), reqCount: new Uint8Array(blocks), received: 0, from: new Set() }
    this.pending.set(i, p)
    return p
  }

  /** `chosen`: in endgame, keys already in `out`, which must not be asked of the same peer again */
  #fill (p: PendingPiece, peer: PickPeer, out: BlockRequest[], max: number, endgame: boolean, chosen?: Set<number>): void {
    for (let b = 0; b < p.blocks && out.length < max; b++) {
      const s = p.state[b]
      if (endgame ? s !== 1 || (p.reqCount[b] as number) >= 2 : s !== 0) continue
      const begin = b * BLOCK_LENGTH
      const key = blockKey(p.index, begin)
      if (peer.requested.has(key) || chosen?.has(key) === true) continue
      p.state[b] = 1
      p.reqCount[b] = (p.reqCount[b] as number) + 1
      out.push({ index: p.index, begin, length: Math.min(BLOCK_LENGTH, p.length - begin) })
    }
  }
}
