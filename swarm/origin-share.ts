import type { PeerConn } from './peer-conn.js'
import type { PiecePicker } from './piece-picker.js'
import { ownersOf, spreadOf, stealerOf, thievesOf } from './share.js'
import { takeBack } from './take-back.js'

/**
 * How one torrent's download shares a foreign seed (the origin) with the other imgdist agents:
 * which pieces are ours to take from it (share.ts), which of other shares we may steal, and which
 * requests to take back. The picker applies the rules (piece-picker.ts); this keeps them in step
 * with the connected peers.
 */

/** A seed that is not an imgdist agent: the origin, or another client. */
export function isForeignSeed (peer: PeerConn): boolean { return peer.isSeed && !peer.imgdist }

export class OriginShare {
  readonly #peerId: Buffer
  readonly #picker: PiecePicker
  readonly #peers: ReadonlySet<PeerConn>
  readonly #refill: (seed: PeerConn) => void
  /** every piece's owner among the downloading agents, as of the last update() */
  #owners: Uint32Array = new Uint32Array(0)
  #own = 0
  /** the downloading agents' ids the owners were worked out for */
  #fleet: string | undefined
  #sharing = false
  /** whether another agent is a thief, as of the last bitfield, HAVE or change of agents */
  #othersSteal: boolean | undefined

  /** `refill`: ask a seed for other blocks after requests to it were cancelled */
  constructor (peerId: Buffer, picker: PiecePicker, peers: ReadonlySet<PeerConn>, refill: (seed: PeerConn) => void) {
    this.#peerId = peerId
    this.#picker = picker
    this.#peers = peers
    this.#refill = refill
    picker.stealer = () => stealerOf(this.#peerId, this.#agents(), this.#owners, picker.stealKeep)
    picker.othersSteal = () => (this.#othersSteal ??= thievesOf(this.#agents(), this.#owners, picker.stealKeep).length > 0)
    picker.spread = () => spreadOf(this.#peerId, this.#agents())
  }

  /** Whether other agents download too: then the origin's upload is split between us. */
  get sharing (): boolean { return this.#sharing }

  /**
   * The downloading agents changed (one came, left or finished): shares are worked out again.
   * Pieces that moved from our share to a newcomer's and of which nothing has come yet are handed
   * over: their requests at the origin are cancelled, for the newcomer will take them from the
   * front of its share without knowing ours are in flight. An agent that starts alone asks the
   * origin for half a second of pieces; in the bench, those were sent twice as the others came.
   */
  update (): void {
    const agents = this.#downloadingAgents()
    this.#othersSteal = undefined
    // Called on every bitfield, most of which leave the set of downloading agents as it was.
    const fleet = agents.map((p) => (p.peerId as Buffer).toString('latin1')).sort().join('')
    if (fleet === this.#fleet && this.#owners.length === this.#picker.count) return
    this.#fleet = fleet
    const before = this.#owners
    const wasOwn = this.#own
    this.#sharing = agents.length > 0
    const { own, owners } = ownersOf(this.#peerId, agents.map((p) => p.peerId as Buffer), this.#picker.count)
    this.#owners = owners
    this.#own = own
    this.#picker.share = (i) => owners[i] === own
    this.#picker.owner = (i) => owners[i] as number
    if (before.length === owners.length) {
      this.#cancelAtSeeds((i) => before[i] === wasOwn && owners[i] !== own && this.#picker.pending.get(i)?.received === 0)
    }
  }

  /**
   * A downloader or a finished agent has pieces we still ask a foreign seed (the origin) for:
   * those requests are cancelled, and the blocks go to the swarm. Agents that started apart fetch
   * the same early pieces from the origin before they see each other, and the origin answers
   * requests in order, so a cancel often comes before the block was sent.
   */
  leaveToSwarm (has: (index: number) => boolean): void {
    this.#othersSteal = undefined // a fellow agent's pieces changed, and with them maybe who steals
    this.#cancelAtSeeds(has)
  }

  #cancelAtSeeds (which: (index: number) => boolean): void {
    for (const seed of this.#peers) {
      if (isForeignSeed(seed) && takeBack(seed, this.#picker, (r) => which(r.index))) this.#refill(seed)
    }
  }

  #downloadingAgents (): PeerConn[] { return [...this.#peers].filter((p) => p.imgdist && !p.isSeed && p.peerId !== undefined) }

  #agents (): Array<{ id: Buffer, bits: Uint8Array }> {
    return this.#downloadingAgents().map((p) => ({ id: p.peerId as Buffer, bits: p.bits }))
  }
}
