import type { PeerConn } from './peer-conn.js'
import type { WebSeed } from './web-seed.js'

/** What a torrent tells operators about its sources: the peers API and the summary logged at the end. */

/**
 * `found`: how the peer's address came to us (tracker, dht, lsd, pex, manual, incoming); `client`:
 * what its extended handshake calls it; `extensions`: the protocol extensions both ends speak on
 * the connection ('BEP 6' fast, 'BEP 10' extension protocol).
 */
export interface SourceInfo {
  address: string
  type: string
  found?: string
  client?: string
  extensions?: string[]
  downloaded: number
  uploaded: number
  downSpeed: number
  upSpeed: number
}

/** Connected peers, and the web seeds that have sent bytes and are not banned (GET /v1/peers). */
export function sourceInfo (peers: Iterable<PeerConn>, webSeeds: readonly WebSeed[]): SourceInfo[] {
  const out: SourceInfo[] = [...peers].map((p) => ({
    address: p.key,
    type: p.incoming ? 'tcpIncoming' : 'tcpOutgoing',
    found: p.source,
    ...(p.client !== undefined ? { client: p.client } : {}),
    extensions: [...(p.fast ? ['BEP 6'] : []), ...(p.extensions ? ['BEP 10'] : [])],
    downloaded: p.down.total, uploaded: p.up.total, downSpeed: p.down.rate(), upSpeed: p.up.rate()
  }))
  for (const w of webSeeds) if (!w.banned && w.downloaded > 0) out.push({ address: w.url, type: 'webSeed', downloaded: w.downloaded, uploaded: 0, downSpeed: 0, upSpeed: 0 })
  return out
}

/** Bytes each still-connected peer sent, and those it sent twice (blocks another peer had delivered first). */
export function bytesBySource (peers: Iterable<PeerConn>): { sources: Record<string, number>, wasted: Record<string, number> } {
  const sources: Record<string, number> = {}
  const wasted: Record<string, number> = {}
  for (const peer of peers) {
    if (peer.down.total > 0) sources[peer.key] = peer.down.total
    if (peer.wastedBytes > 0) wasted[peer.key] = peer.wastedBytes
  }
  return { sources, wasted }
}
