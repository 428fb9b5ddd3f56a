import type { PeerConn } from './peer-conn.js'

/**
 * Which connections a torrent takes: none from banned peers, at most `maxConns`, and of two
 * connections between the same two peers, one. Peers are banned for pieces that failed sha1: a
 * sole sender at once, a co-sender at its second strike (so that one bad co-sender does not get
 * an honest one banned with it), by address and, once known, by peer id, so that the same client
 * coming back from another port is refused too.
 */
export class PeerGate {
  /** banned addresses ("host:port", or a web seed's URL); the swarm adds our own addresses */
  readonly banned = new Set<string>()
  readonly #bannedIds = new Set<string>()
  readonly #strikes = new Map<string, number>()
  readonly #peerId: Buffer
  readonly #maxConns: number

  constructor (peerId: Buffer, maxConns: number) {
    this.#peerId = peerId
    this.#maxConns = maxConns
  }

  /**
   * Whether a connection whose handshake just came may join. Two peers that learn of each other at
   * once dial each other; if each end kept the connection it saw first, each could close the one
   * the other kept, again on every retry (seen in the bench: agents reached the origin only after
   * 3–4 s). Both ends therefore keep the connection opened by the smaller peer id, and the other
   * one is closed here.
   */
  canAccept (peers: ReadonlySet<PeerConn>, peerId: Buffer, key: string, outgoing: boolean): boolean {
    if (this.banned.has(key) || this.#bannedIds.has(peerId.toString('hex'))) return false
    const dup = [...peers].find((p) => p.peerId?.equals(peerId) === true)
    if (dup === undefined) return peers.size < this.#maxConns
    if (dup.incoming !== outgoing) return false // the same side opened both: keep the first
    const opener = outgoing ? this.#peerId : peerId
    if (Buffer.compare(opener, outgoing ? peerId : this.#peerId) > 0) return false
    dup.destroy('duplicate connection: keeping the one opened by the smaller peer id')
    return true
  }

  /** A piece from `senders` failed its sha1. Returns the keys banned by it; their connections are closed. */
  blame (senders: ReadonlySet<string>, peers: ReadonlySet<PeerConn>): string[] {
    const out: string[] = []
    for (const key of senders) {
      const strikes = (this.#strikes.get(key) ?? 0) + 1
      this.#strikes.set(key, strikes)
      if ((senders.size > 1 && strikes < 2) || this.banned.has(key)) continue
      this.banned.add(key)
      out.push(key)
      for (const peer of peers) {
        if (peer.key !== key) continue
        if (peer.peerId !== undefined) this.#bannedIds.add(peer.peerId.toString('hex'))
        peer.destroy('banned: sent a piece that failed sha1')
      }
    }
    return out
  }
}
