import { PEX_MAX_PEERS, PexFlag, encodePex, type PexPeer } from '../lib/peer-extension.js'
import { parseHostPort } from '../lib/host-port.js'
import type { PeerConn } from './peer-conn.js'

/**
 * Peer exchange (BEP 11), the sending side: every peer that offered `ut_pex` hears, at most once
 * a minute, which listening addresses we are connected to that we have not told it yet, and
 * which we told it of that are gone. The first message goes out as soon as there is something
 * to say, so that a peer that joins through one site hears of the rest within a tick.
 *
 * Why an agent needs it: a fleet's peers are found through the index's tracker (and the DHT
 * where allowed). When the tracker is unreachable, or a site's agent only knows one peer, PEX
 * from any connected peer (the origin seed knows every downloader) fills in the rest.
 * The receiving side is TorrentHandle.onPeerPex, which hands addresses to the swarm's dialler.
 */

/** BEP 11: no more often than once a minute per peer */
export const PEX_INTERVAL_MS = 60_000

/** The listening address of each connected peer that has one, keyed "host:port". */
interface Listening extends PexPeer { key: string }

function listening (peers: ReadonlySet<PeerConn>): Map<string, Listening> {
  const out = new Map<string, Listening>()
  for (const p of peers) {
    const key = p.listenKey
    const a = key !== undefined ? parseHostPort(key) : undefined
    if (key === undefined || a === undefined) continue
    out.set(key, { key, ...a, flags: (p.isSeed ? PexFlag.seed : 0) | (p.incoming ? 0 : PexFlag.connectable) })
  }
  return out
}

/** One round, from the torrent's tick: sends what each PEX peer is due. Returns how many messages went out. */
export function pexRound (peers: ReadonlySet<PeerConn>, now: number): number {
  let current: Map<string, Listening> | undefined
  let sent = 0
  for (const peer of peers) {
    if (peer.pexId === undefined || peer.closed || (peer.pexSentAt > 0 && now - peer.pexSentAt < PEX_INTERVAL_MS)) continue
    current ??= listening(peers)
    const self = peer.listenKey
    const added: Listening[] = []
    for (const [k, a] of current) if (k !== self && !peer.pexSent.has(k) && added.length < PEX_MAX_PEERS) added.push(a)
    const dropped: Array<{ key: string, host: string, port: number }> = []
    for (const k of peer.pexSent) {
      const a = current.has(k) ? undefined : parseHostPort(k)
      if (a !== undefined && dropped.length < PEX_MAX_PEERS) dropped.push({ key: k, ...a })
    }
    if (added.length === 0 && dropped.length === 0) continue
    const msg = encodePex(peer.pexId, added, dropped)
    if (msg.added.length === 0 && msg.dropped.length === 0) continue
    for (const a of msg.added) peer.pexSent.add(a.key)
    for (const d of msg.dropped) peer.pexSent.delete(d.key)
    peer.sendPex(msg.bytes)
    peer.pexSentAt = now
    sent++
  }
  return sent
}
