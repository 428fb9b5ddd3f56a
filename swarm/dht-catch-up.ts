import type { Client as DHT } from 'bittorrent-dht'
import { joinHostPort } from '../lib/host-port.js'

/**
 * torrent-discovery looks a torrent up and announces it on the DHT once when it is added, then
 * every 15 minutes. On a small private DHT, such as a site network whose only bootstrap node is
 * the index server's, that first round often runs before the routing table holds anyone: the
 * origin seed announces to nobody, an agent asks a node that knows no peers, and neither learns
 * of the other for 15 minutes (test/index-dht-bootstrap.test.ts waited in vain before this).
 *
 * Two small additions close that gap, both within BEP 5:
 * - While the routing table is small, each node that joins it triggers (debounced) a fresh
 *   lookup and announce of every torrent, so announces reach the nodes that have just appeared.
 *   On the public DHT the table passes SMALL_TABLE within seconds and this stops.
 * - A node that announces to us a torrent we hold (announce_peer, with a token we gave that
 *   address) is dialled as a peer, as if a lookup had named it. Its host is the packet's source.
 */

/** routing tables up to this size count as a small (private) DHT */
export const SMALL_TABLE = 32
const DEBOUNCE_MS = 500

export interface DhtCatchUpHooks {
  /** torrents this node holds, by info hash (hex) */
  infoHashes: () => string[]
  /** the port announced for them (the torrent port) */
  port: () => number | undefined
  /** a node announced `addr` (host:port) for a torrent we hold */
  onAnnounce: (infoHash: string, addr: string) => void
}

/** Starts the catch-up on `dht`; returns the function that stops it. */
export function dhtCatchUp (dht: DHT, hooks: DhtCatchUpHooks): () => void {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const round = (): void => {
    timer = undefined
    const port = hooks.port()
    if (port === undefined) return
    for (const infoHash of hooks.infoHashes()) {
      // the lookup refreshes the nodes (and their tokens) the announce then goes to
      dht.lookup(infoHash, (err) => { if (err === null && !stopped) dht.announce(infoHash, port) })
    }
  }
  const onNode = (): void => {
    if (timer !== undefined || dht.nodes.count() > SMALL_TABLE) return
    timer = setTimeout(round, DEBOUNCE_MS)
    timer.unref()
  }
  const onAnnounce = (peer: { host: string, port: number }, infoHash: Uint8Array): void => {
    const hex = Buffer.from(infoHash).toString('hex')
    if (!hooks.infoHashes().includes(hex)) return
    hooks.onAnnounce(hex, joinHostPort(peer.host, peer.port))
  }
  dht.on('node', onNode)
  dht.on('announce', onAnnounce)
  return () => {
    stopped = true
    clearTimeout(timer)
    dht.off('node', onNode)
    dht.off('announce', onAnnounce)
  }
}
