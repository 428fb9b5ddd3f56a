import type { PeerConn } from './peer-conn.js'
import type { PiecePicker } from './piece-picker.js'
import { ownersOf, stealerOf } from './share.js'

/**
 * How one torrent's download shares a foreign seed (the origin) with the other imgdist agents:
 * which pieces are ours to take from it (share.ts), which of other shares we may steal, and which
 * requests to take back once a fellow agent holds the piece. The picker applies the rules
 * (piece-picker.ts); this keeps them in step with the connected peers.
 */

/** A seed that is not an imgdist agent: the origin, or another client. */
export function isForeignSeed (peer: PeerConn): boolean { return peer.isSeed && !peer.imgdist }

export class OriginShare {
  readonly #peerId: Buffer
  readonly #picker: PiecePicker
  readonly #peers: ReadonlySet<PeerConn>
  /** every piece's owner among the downloading agents, as of the last update() */
  #owners: Uint32Array = new Uint32Array(0)

  constructor (peerId: Buffer, picker: PiecePicker, peers: ReadonlySet<PeerConn>) {
    this.#peerId = peerId
    this.#picker = picker
    this.#peers = peers
    picker.stealer = () => this.#stealer()
  }

  /** The downloading agents changed (one came, left or finished): shares are worked out again. */
  update (): void {
    const { own, owners } = ownersOf(this.#peerId, this.#downloadingAgents().map((p) => p.peerId as Buffer), this.#picker.count)
    this.#owners = owners
    this.#picker.share = (i) => owners[i] === own
    this.#picker.owner = (i) => owners[i] as number
  }

  /**
   * A downloader or a finished agent has pieces we still ask a foreign seed (the origin) for:
   * those requests are cancelled, and the blocks go to the swarm. Agents that started apart fetch
   * the same early pieces from the origin before they see each other, and the origin answers
   * requests in order, so a cancel often comes before the block was sent.
   */
  leaveToSwarm (has: (index: number) => boolean): void {
    for (const seed of this.#peers) {
      if (!isForeignSeed(seed) || seed.requested.size === 0) continue
      for (const [key, r] of seed.requested) {
        if (!has(r.index)) continue
        seed.cancel(key)
        this.#picker.unrequest(r.index, r.begin)
      }
    }
  }

  #downloadingAgents (): PeerConn[] { return [...this.#peers].filter((p) => p.imgdist && !p.isSeed && p.peerId !== undefined) }

  #stealer (): (i: number) => boolean {
    const agents = this.#downloadingAgents().map((p) => ({ id: p.peerId as Buffer, bits: p.bits }))
    return stealerOf(this.#peerId, agents, this.#owners, this.#picker.stealKeep)
  }
}
