import { createHash } from 'node:crypto'
import { joinHostPort, parseHostPort } from '../lib/host-port.js'
import { BLOCK_LENGTH } from '../lib/peer-wire.js'
import type { PeerConn } from './peer-conn.js'
import type { PendingPiece } from './piece-picker.js'

/**
 * Which connections a torrent takes: none from banned peers, at most `maxConns` (a newcomer may
 * take the slot of a peer idle for long), and of two connections between the same two peers, one.
 *
 * Bans come from pieces that failed sha1. A sole sender is banned at once. Co-senders are not
 * blamed for the failure itself: with 1 MiB pieces the picker splits a piece between peers, and
 * when each co-sender was banned at its second strike, a peer sending garbage got the honest seed
 * banned with it, and the download could never finish. Instead each block's hash and sender are
 * kept for a failed piece, the piece is fetched again from one sender (requester.ts), and when a
 * copy passes, whoever sent a block that differs from it is banned (libtorrent's "smart ban").
 */

/** The most entries kept in each ban list (addresses, peer ids, hosts); the oldest go first. */
export const MAX_BANS = 1000
/**
 * Banned peers from one host after which the host itself is refused. A peer's address is its
 * host and listening port, but an incoming peer's key has its ephemeral source port and it may
 * claim any listening port or peer id when it comes back: without a per-host count, a banned peer
 * reconnected at once with a fresh id, and cost another bad piece and another ban entry each
 * time. The host is not refused at the first ban: several honest peers may share one address
 * behind a NAT, and many test engines share 127.0.0.1. A few bans cost a few pieces, no more; past
 * them the host is refused both ways (an attacker could otherwise have us dial each port it
 * announces), and honest peers behind the same NAT still get the image from everyone else.
 */
export const HOST_BAN_AFTER = 3
/**
 * No piece data either way for this long: the peer's slot may go to a newcomer when the torrent
 * is at its connection limit. Peers that only handshake and send keep-alives otherwise kept every
 * slot, and honest peers were refused for as long as they stayed.
 */
export const IDLE_EVICT_MS = 30_000
/**
 * At the limit, one idle peer is dropped this often even without a newcomer at the door: the
 * swarm does not dial while the torrent is full, so without it a downloader full of idle incoming
 * peers never reached the seeds it knew of.
 */
export const TURNOVER_MS = 5_000
/** failed pieces whose blocks are remembered (a few bytes a block), and copies kept of each */
const MAX_SUSPECT_PIECES = 64
const MAX_COPIES = 4
const HASH_BYTES = 8

/** A Set of strings that keeps the `max` most recently added. */
class BoundedSet extends Set<string> {
  readonly #max: number
  constructor (max: number) { super(); this.#max = max }
  override add (v: string): this {
    if (!this.has(v) && this.size >= this.#max) this.delete(this.values().next().value as string)
    return super.add(v)
  }
}

/** Who sent a block, as kept after its connection may have gone. */
interface Sender { key: string, id?: string | undefined, listen?: string | undefined, host?: string | undefined }

/** One failed copy of a piece: per block, its hash and the index of its sender in `senders`. */
interface Copy { senders: Sender[], from: Uint16Array, hashes: Buffer }

interface Activity { at: number, up: number, useful: boolean }

export class PeerGate {
  /** banned addresses ("host:port", or a web seed's URL); the swarm adds our own addresses */
  readonly banned: Set<string> = new BoundedSet(MAX_BANS)
  readonly #bannedIds = new BoundedSet(MAX_BANS)
  readonly #bannedHosts = new BoundedSet(MAX_BANS)
  /** bans per host, up to HOST_BAN_AFTER */
  readonly #hostBans = new Map<string, number>()
  readonly #peerId: Buffer
  readonly #maxConns: number
  /** who sent each block of a piece being assembled */
  readonly #blockFrom = new WeakMap<PendingPiece, Array<PeerConn | undefined>>()
  readonly #suspects = new Map<number, Copy[]>()
  readonly #activity = new WeakMap<PeerConn, Activity>()
  #turnoverAt = 0

  constructor (peerId: Buffer, maxConns: number) {
    this.#peerId = peerId
    this.#maxConns = maxConns
  }

  /**
   * Whether a connection whose handshake just came may join. Two peers that learn of each other at
   * once dial each other; if each end kept the connection it saw first, each could close the one
   * the other kept, again on every retry (seen in the bench: agents reached the origin only after
   * 3–4 s). Both ends therefore keep the connection opened by the smaller peer id, and the other
   * one is closed here. At the limit, a peer idle for long is closed to make room.
   */
  canAccept (peers: ReadonlySet<PeerConn>, peerId: Buffer, key: string, outgoing: boolean, now = Date.now()): boolean {
    if (this.isBanned(key, peerId)) return false
    const dup = [...peers].find((p) => p.peerId?.equals(peerId) === true)
    if (dup === undefined) {
      if (peers.size < this.#maxConns) return true
      const idle = this.#idlest(peers, now)
      if (idle === undefined) return false
      idle.destroy('idle: its connection slot went to a newcomer')
      return true
    }
    if (dup.incoming !== outgoing) return false // the same side opened both: keep the first
    const opener = outgoing ? this.#peerId : peerId
    if (Buffer.compare(opener, outgoing ? peerId : this.#peerId) > 0) return false
    dup.destroy('duplicate connection: keeping the one opened by the smaller peer id')
    return true
  }

  isBanned (key: string, peerId?: Buffer): boolean {
    if (this.banned.has(key) || (peerId !== undefined && this.#bannedIds.has(peerId.toString('hex')))) return true
    const host = parseHostPort(key)?.host
    return host !== undefined && this.#bannedHosts.has(host)
  }

  // ---- idle peers ----

  /** A peer joined the torrent: it counts as active from now. */
  joined (peer: PeerConn, now = Date.now()): void { this.#activity.set(peer, { at: now, up: peer.up.total, useful: false }) }

  /** A block we asked the peer for came. (Bytes we upload are seen from the peer's meter.) */
  delivered (peer: PeerConn, now = Date.now()): void {
    const a = this.#activity.get(peer)
    if (a !== undefined) { a.at = now; a.useful = true }
  }

  /** Once a second: at the limit, now and then the longest idle peer goes, so that the swarm may dial. */
  tick (peers: ReadonlySet<PeerConn>, now = Date.now()): void {
    for (const p of peers) this.#seen(p, now)
    if (peers.size < this.#maxConns || now - this.#turnoverAt < TURNOVER_MS) return
    const idle = this.#idlest(peers, now)
    if (idle === undefined) return
    this.#turnoverAt = now
    idle.destroy('idle at the connection limit')
  }

  #seen (p: PeerConn, now: number): Activity {
    let a = this.#activity.get(p)
    if (a === undefined) { a = { at: now, up: p.up.total, useful: false }; this.#activity.set(p, a) }
    if (p.up.total !== a.up) { a.up = p.up.total; a.at = now; a.useful = true }
    return a
  }

  /**
   * The peer to drop for a newcomer: one that sent or took no piece data for IDLE_EVICT_MS. Of
   * those, first one that never did, then one with interest neither way, then the longest idle.
   * A fellow agent taking part in the share rule is as likely to go as any idle peer, but agents
   * that download together exchange pieces; one idle for that long shares nothing with us.
   */
  #idlest (peers: ReadonlySet<PeerConn>, now: number): PeerConn | undefined {
    let best: PeerConn | undefined
    let bestRank = Infinity
    let bestAt = Infinity
    for (const p of peers) {
      const a = this.#seen(p, now)
      if (p.closed || now - a.at < IDLE_EVICT_MS) continue
      const rank = (a.useful ? 2 : 0) + (p.amInterested || p.peerInterested ? 1 : 0)
      if (rank < bestRank || (rank === bestRank && a.at < bestAt)) { best = p; bestRank = rank; bestAt = a.at }
    }
    return best
  }

  // ---- bans ----

  /** Block `b` of `p` came from `peer` and was kept. */
  sentBlock (p: PendingPiece, b: number, peer: PeerConn): void {
    let from = this.#blockFrom.get(p)
    if (from === undefined) { from = new Array<PeerConn | undefined>(p.blocks); this.#blockFrom.set(p, from) }
    from[b] = peer
  }

  /**
   * `p` failed its sha1. A sole sender (a peer or a web seed) is banned at once and its
   * connections closed; the keys banned are returned. Of a piece with several senders, each
   * block's hash and sender are kept for passed(): nobody is banned yet.
   */
  failed (p: PendingPiece, peers: ReadonlySet<PeerConn>): string[] {
    const from = this.#blockFrom.get(p)
    if (p.from.size <= 1) {
      const key = [...p.from][0]
      if (key === undefined) return []
      const conn = from?.find((c) => c?.key === key)
      return this.#ban(conn !== undefined ? senderOf(conn) : { key }, peers) ? [key] : []
    }
    if (from === undefined || p.buf === undefined) return []
    const senders: Sender[] = []
    const index = new Map<PeerConn, number>()
    const copy: Copy = { senders, from: new Uint16Array(p.blocks).fill(0xffff), hashes: Buffer.alloc(p.blocks * HASH_BYTES) }
    for (let b = 0; b < p.blocks; b++) {
      const c = from[b]
      if (c === undefined) continue
      let k = index.get(c)
      if (k === undefined) { k = senders.push(senderOf(c)) - 1; index.set(c, k) }
      copy.from[b] = k
      blockHash(p, p.buf, b).copy(copy.hashes, b * HASH_BYTES)
    }
    const copies = this.#suspects.get(p.index) ?? []
    this.#suspects.delete(p.index) // re-inserted last: the oldest suspect is dropped first
    copies.push(copy)
    if (copies.length > MAX_COPIES) copies.shift()
    this.#suspects.set(p.index, copies)
    if (this.#suspects.size > MAX_SUSPECT_PIECES) this.#suspects.delete(this.#suspects.keys().next().value as number)
    return []
  }

  /** `p` passed its sha1: the senders of blocks of its failed copies that differ from it are banned. */
  passed (p: PendingPiece, peers: ReadonlySet<PeerConn>): string[] {
    const copies = this.#suspects.get(p.index)
    if (copies === undefined || p.buf === undefined) return []
    this.#suspects.delete(p.index)
    const out: string[] = []
    const good = new Map<number, Buffer>()
    for (const copy of copies) {
      const guilty = new Set<number>()
      for (let b = 0; b < p.blocks; b++) {
        const k = copy.from[b] as number
        if (k === 0xffff || guilty.has(k)) continue
        let h = good.get(b)
        if (h === undefined) { h = blockHash(p, p.buf, b); good.set(b, h) }
        if (!h.equals(copy.hashes.subarray(b * HASH_BYTES, (b + 1) * HASH_BYTES))) guilty.add(k)
      }
      for (const k of guilty) {
        const s = copy.senders[k] as Sender
        if (this.#ban(s, peers)) out.push(s.key)
      }
    }
    return out
  }

  /** Bans a sender by its address, listening address, peer id and (after a few) host; closes its connections. */
  #ban (s: Sender, peers: ReadonlySet<PeerConn>): boolean {
    if (this.banned.has(s.key)) return false
    this.banned.add(s.key)
    if (s.listen !== undefined) this.banned.add(s.listen)
    if (s.id !== undefined) this.#bannedIds.add(s.id)
    if (s.host !== undefined) {
      const n = (this.#hostBans.get(s.host) ?? 0) + 1
      this.#hostBans.delete(s.host)
      this.#hostBans.set(s.host, n)
      if (this.#hostBans.size > MAX_BANS) this.#hostBans.delete(this.#hostBans.keys().next().value as string)
      if (n >= HOST_BAN_AFTER) this.#bannedHosts.add(s.host)
    }
    for (const peer of peers) {
      if (peer.key === s.key || (s.id !== undefined && peer.peerId?.toString('hex') === s.id)) peer.destroy('banned: sent a piece that failed sha1')
    }
    return true
  }
}

function senderOf (c: PeerConn): Sender {
  const host = parseHostPort(c.key)?.host
  const listen = !c.incoming ? c.key : host !== undefined && c.listenPort !== undefined ? joinHostPort(host, c.listenPort) : undefined
  return { key: c.key, id: c.peerId?.toString('hex'), listen, host }
}

function blockHash (p: PendingPiece, buf: Buffer, b: number): Buffer {
  const begin = b * BLOCK_LENGTH
  return createHash('sha1').update(buf.subarray(begin, Math.min(p.length, begin + BLOCK_LENGTH))).digest().subarray(0, HASH_BYTES)
}
