import type { Logger } from 'pino'
import { BLOCK_LENGTH, hasBit, setBit } from '../lib/peer-wire.js'
import type { BlockRequest } from './piece-picker.js'

/**
 * An origin's egress budget for one torrent (`seeding.egressBudget` of the index server): how
 * many copies of the image it sends while other peers could send them instead.
 *
 * The Kumar–Ross bound counts on the origin's whole uplink: with an origin at 200 Mbit/s and
 * seven agents at 50 Mbit/s it must send about 2.5 copies, and imgdist's agents, which use an
 * origin's spare upload once it has sent every piece (piece-picker.ts `seedIdle()`), sent 2.6.
 * With a budget of B copies the origin sends every block once, always, and a block again only
 * while what it has sent plus what it has never sent stays within B × the image: the first
 * copies are reserved, so a budget never leaves a piece unsent. Past that, a request for a block
 * sent before is rejected (BEP 6), and the requester takes it from the peers that hold it.
 *
 * Another peer holds a block when a connected peer has its piece, or when the origin's tracker
 * knows a seed of the torrent other than the origin (`seedsElsewhere`). The second case is the
 * site that joins after the others finished: finished agents close their connection to the
 * origin (two seeds have nothing to trade), and without the tracker's count the origin would
 * think itself the only holder and serve that site everything, whatever the budget. A seed
 * listed that the site cannot reach (a firewall, or a false announce: the tracker takes anyone's
 * word) costs the site one stall, below.
 *
 * Never rejected, whatever the budget:
 * - a piece no other peer holds (there is nowhere else to get it);
 * - a stalled peer: one whose count of pieces has not grown for STALLED_MS. It stays exempt while
 *   what it gains from elsewhere stays under an eighth of what we send it: a site that cannot
 *   reach the others (a firewall) is served at full speed after its first stall, while one that
 *   only waited a moment is rejected again once the others feed it. (A rule on the whole
 *   connection's bytes, "mostly from us", fed itself: every duplicate sent kept the peer exempt,
 *   and in a cold bench run the origin sent 1.69 copies against a budget of 1.45.)
 * - a peer without BEP 6 (upload.ts): it cannot be told, and a dropped request would stall it.
 * A budget thus bounds what the origin sends to a fleet that can relay, not what a lone site
 * gets. It counts from the seeder's start, per torrent.
 */

/** a requester that has gained no piece for this long is served whatever the budget */
export const STALLED_MS = 5000
/** how long a count of seeds from `seedsElsewhere` is used before it is asked again (it walks the tracker's peers) */
export const SEEDS_TTL_MS = 1000

/** What the budget reads of a peer (PeerConn). */
export interface BudgetPeer {
  readonly bits: Uint8Array
  readonly haveCount: number
  readonly lastHaveAt: number
  /** bytes we sent it */
  readonly up: { readonly total: number }
}

export class EgressBudget {
  /** bytes the origin may send while other peers can send them instead */
  readonly limit: number
  readonly #length: number
  readonly #pieceLength: number
  readonly #perPiece: number
  /** a bit per 16 KiB block: sent at least once */
  readonly #sentOnce: Uint8Array
  #sent = 0
  #unsent: number
  /** blocks rejected so far */
  refused = 0
  /** stalled peers, with their bytes held and sent by us when they stalled */
  readonly #exempt = new WeakMap<BudgetPeer, { have: number, up: number }>()
  readonly #seedsElsewhere: () => number
  #seeds = { n: 0, at: -Infinity }
  readonly #log: Logger | undefined

  /**
   * `copies`: the budget in copies of the torrent (at least 1). `seedsElsewhere`: how many seeds
   * of the torrent other than us the origin's tracker knows (none if omitted). `log` hears of the
   * first refusal.
   */
  constructor (length: number, pieceLength: number, copies: number, opts: { seedsElsewhere?: (() => number) | undefined, log?: Logger } = {}) {
    this.#seedsElsewhere = opts.seedsElsewhere ?? (() => 0)
    this.#log = opts.log
    this.#length = length
    this.#pieceLength = pieceLength
    this.#perPiece = Math.ceil(pieceLength / BLOCK_LENGTH)
    this.#sentOnce = new Uint8Array(Math.ceil(Math.ceil(length / pieceLength) * this.#perPiece / 8))
    this.#unsent = length
    this.limit = Math.ceil(Math.max(1, copies) * length)
  }

  /** bytes sent so far */
  get sent (): number { return this.#sent }

  /** Whether to send `r` to `peer`, of all the torrent's connected `peers` (BEP 6 peers only: see above); a refusal is counted in `refused`. */
  allows (peer: BudgetPeer, r: BlockRequest, peers: Iterable<BudgetPeer>, now = Date.now()): boolean {
    if (this.#sent + this.#unsent + r.length <= this.limit) return true
    if (!this.#allSentOnce(r)) return true
    if (this.#stalled(peer, now)) return true
    if (!this.#heldElsewhere(peer, r.index, peers, now)) return true
    if (this.refused++ === 0) this.#log?.info({ copies: this.limit / this.#length, sent: this.#sent }, 'egress budget reached: blocks that other peers hold are left to them')
    return false
  }

  #heldElsewhere (peer: BudgetPeer, index: number, peers: Iterable<BudgetPeer>, now: number): boolean {
    for (const p of peers) if (p !== peer && hasBit(p.bits, index)) return true
    if (now - this.#seeds.at > SEEDS_TTL_MS) this.#seeds = { n: this.#seedsElsewhere(), at: now }
    return this.#seeds.n > 0
  }

  #stalled (peer: BudgetPeer, now: number): boolean {
    const have = peer.haveCount * this.#pieceLength
    let since = this.#exempt.get(peer)
    if (since === undefined) {
      if (now - peer.lastHaveAt <= STALLED_MS) return false
      since = { have, up: peer.up.total }
      this.#exempt.set(peer, since)
    }
    const fromUs = peer.up.total - since.up
    if ((have - since.have - fromUs) * 8 <= fromUs) return true
    this.#exempt.delete(peer)
    return false
  }

  /** `r` was handed to a socket. */
  record (r: BlockRequest): void {
    this.#sent += r.length
    const pieceSize = Math.min(this.#pieceLength, this.#length - r.index * this.#pieceLength)
    const [first, last] = this.#blocks(r)
    for (let b = first; b < last; b++) {
      const k = r.index * this.#perPiece + b
      if (hasBit(this.#sentOnce, k)) continue
      setBit(this.#sentOnce, k)
      this.#unsent -= Math.max(0, Math.min(BLOCK_LENGTH, pieceSize - b * BLOCK_LENGTH))
    }
  }

  /** the 16 KiB blocks of its piece the request covers, [first, last) */
  #blocks (r: BlockRequest): [number, number] {
    return [Math.floor(r.begin / BLOCK_LENGTH), Math.min(Math.ceil((r.begin + r.length) / BLOCK_LENGTH), this.#perPiece)]
  }

  #allSentOnce (r: BlockRequest): boolean {
    const [first, last] = this.#blocks(r)
    for (let b = first; b < last; b++) if (!hasBit(this.#sentOnce, r.index * this.#perPiece + b)) return false
    return true
  }
}
