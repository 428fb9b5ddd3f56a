import { parseHostPort } from '../lib/host-port.js'
import type { PeerSource } from './peer-conn.js'

/**
 * The addresses a torrent may dial, with when to try each again. Trackers and the operator
 * (addPeer) are answers we asked for; the DHT, PEX and LSD are gossip that anyone can send, as
 * many times as they like and naming any host. So the table is bounded for every source, and
 * gossip can never push out what a tracker or the operator said.
 *
 * - At most MAX_CANDIDATES per torrent. When it is full, a newcomer takes the place of the least
 *   useful address that is neither connected nor being dialled: gossip first, the one that failed
 *   most, then one never reached, oldest first. Gossip may only replace gossip; a tracker's or the
 *   operator's address may also replace one of theirs that failed. Until session 21 nothing left
 *   the table: one burst of 1000 dead PEX addresses kept every later address out for good.
 * - At most MAX_GOSSIP_PER_HOST ports of one host from gossip, where a tracker lists what it
 *   lists: one DHT node announced 5000 ports of its own host, and all were remembered and dialled.
 *   At that limit a gossiped port still replaces a gossiped port of that host that failed twice
 *   (its retry too, 10 s later), so made-up ports named for a real peer's host cannot keep its
 *   real port out for good, yet a stream of ports from one host is not dialled as fast as the
 *   first dials fail.
 * - Gossip that failed MAX_GOSSIP_FAILURES dials in a row is forgotten (the next mention brings it
 *   back), so dead addresses are not dialled every five minutes for the torrent's lifetime.
 * - Addresses are dialled in the order of due(): trusted before gossip, reached before never
 *   reached, fewer failures first, and within that taking turns between whoever named them (each
 *   PEX peer, the DHT, LSD). Until session 22 it was insertion order: 250 addresses from a few
 *   peers that accept and never handshake each held a dial slot until the handshake deadline, and
 *   a real peer named after them waited for every one.
 */

export const MAX_CANDIDATES = 1000
export const MAX_GOSSIP_PER_HOST = 4
/** a gossiped port of a host at MAX_GOSSIP_PER_HOST may be replaced once it failed this many dials */
export const HOST_REPLACE_FAILURES = 2
/** about ten minutes of backoff (10 s doubling to 5 min) */
export const MAX_GOSSIP_FAILURES = 6

const GOSSIP: ReadonlySet<PeerSource> = new Set<PeerSource>(['dht', 'pex', 'lsd'])
export const isGossip = (source: PeerSource): boolean => GOSSIP.has(source)

export interface Candidate {
  /** the first source that named it (shown in the peers API) */
  readonly source: PeerSource
  /** a tracker or the operator named it (whatever named it first) */
  trusted: boolean
  failures: number
  nextAt: number
  /** a handshake with it completed once: worth more than one never reached */
  reached: boolean
  readonly host: string
  /** who named it first: the PEX peer's address, or the source */
  readonly via: string
}

/** Whether one of `peers` is `addr`, as dialled or by its listening port. */
export function connectedTo (peers: Iterable<{ key: string, listenKey?: string | undefined }>, addr: string): boolean {
  for (const p of peers) if (p.key === addr || p.listenKey === addr) return true
  return false
}

export class Candidates {
  readonly #map = new Map<string, Candidate>()
  readonly #perHost = new Map<string, number>()
  /** connected or being dialled: such an address is never evicted */
  readonly #busy: (addr: string) => boolean

  constructor (busy: (addr: string) => boolean) { this.#busy = busy }

  get size (): number { return this.#map.size }
  get (addr: string): Candidate | undefined { return this.#map.get(addr) }
  has (addr: string): boolean { return this.#map.has(addr) }

  /** Remembers `addr` (canonical host:port) from `source` (`via`: the peer whose PEX named it); false if the table has no room for it. */
  add (addr: string, source: PeerSource, via: string = source): boolean {
    const trusted = !isGossip(source)
    const known = this.#map.get(addr)
    if (known !== undefined) { if (trusted) known.trusted = true; return true }
    const host = parseHostPort(addr)?.host
    if (host === undefined) return false
    if (!trusted && (this.#perHost.get(host) ?? 0) >= MAX_GOSSIP_PER_HOST) {
      const victim = this.#victim(false, (c) => c.host === host && c.failures >= HOST_REPLACE_FAILURES)
      if (victim === undefined) return false
      this.delete(victim)
    }
    if (this.#map.size >= MAX_CANDIDATES) {
      const victim = this.#victim(trusted, () => true)
      if (victim === undefined) return false
      this.delete(victim)
    }
    this.#map.set(addr, { source, trusted, failures: 0, nextAt: 0, reached: false, host, via })
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1)
    return true
  }

  delete (addr: string): void {
    const c = this.#map.get(addr)
    if (c === undefined) return
    this.#map.delete(addr)
    const n = (this.#perHost.get(c.host) ?? 1) - 1
    if (n > 0) this.#perHost.set(c.host, n)
    else this.#perHost.delete(c.host)
  }

  /** A dial failed: try again after a backoff, or forget a gossiped address that keeps failing. */
  failed (addr: string, now: number): void {
    const c = this.#map.get(addr)
    if (c === undefined) return
    c.failures++
    if (!c.trusted && c.failures >= MAX_GOSSIP_FAILURES) { this.delete(addr); return }
    c.nextAt = now + Math.min(300_000, 5000 * 2 ** Math.min(c.failures, 6))
  }

  /** A handshake with it completed. */
  reached (addr: string): void {
    const c = this.#map.get(addr)
    if (c !== undefined) { c.failures = 0; c.reached = true }
  }

  /**
   * The addresses due for a dial at `now`, best first: trusted, then reached, then fewer failures;
   * within each such rank the namers take turns (round robin over `via`, each one's addresses in
   * the order they came), so one namer's many addresses cannot keep another's waiting.
   */
  due (now: number): string[] {
    const ranks = new Map<number, Map<string, string[]>>()
    for (const [addr, c] of this.#map) {
      if (c.nextAt > now) continue
      const rank = (c.trusted ? 0 : 2000) + (c.reached ? 0 : 1000) + Math.min(c.failures, 999)
      let byVia = ranks.get(rank)
      if (byVia === undefined) { byVia = new Map(); ranks.set(rank, byVia) }
      const list = byVia.get(c.via)
      if (list === undefined) byVia.set(c.via, [addr])
      else list.push(addr)
    }
    const out: string[] = []
    for (const rank of [...ranks.keys()].sort((a, b) => a - b)) {
      const lists = [...(ranks.get(rank) as Map<string, string[]>).values()]
      for (let i = 0, any = true; any; i++) {
        any = false
        for (const list of lists) if (i < list.length) { out.push(list[i] as string); any = true }
      }
    }
    return out
  }

  /**
   * The least useful address that `may` allows and that is not busy: gossip before trusted (and
   * trusted only for a trusted newcomer, and only one that failed), then most failures, then one
   * never reached, then the oldest (the map keeps insertion order).
   */
  #victim (trustedNewcomer: boolean, may: (c: Candidate) => boolean): string | undefined {
    let best: string | undefined
    let bestRank = -1
    for (const [addr, c] of this.#map) {
      if (c.trusted && !(trustedNewcomer && c.failures > 0)) continue
      // gossip outranks trusted; then failures; then never reached (strictly greater keeps the oldest of equals)
      const rank = (c.trusted ? 0 : 1_000_000) + Math.min(c.failures, 999) * 2 + (c.reached ? 0 : 1)
      // busy last: it may look through the connections, and only a better rank needs it
      if (rank > bestRank && may(c) && !this.#busy(addr)) { best = addr; bestRank = rank }
    }
    return best
  }
}
