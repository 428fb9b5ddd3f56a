import { Client as DHT } from 'bittorrent-dht'
import type { Logger } from 'pino'

/**
 * The engine's BitTorrent DHT node (BEP 5, bittorrent-dht; torrent-discovery announces and looks
 * torrents up through it). Bound at once: a new node starts its bootstrap queries immediately,
 * and their first send would bind the socket to a random port.
 */
export function startDhtNode (port: number, bootstrap: string[], log: Logger): DHT {
  // no list: bittorrent-dht's public routers
  const dht = new DHT({ bootstrap: bootstrap.length > 0 ? bootstrap : undefined as unknown as string[] })
  dht.on('error', (err: Error) => { log.warn({ err: err.message, port }, 'DHT error (swarm.dht.port sets its UDP port)') })
  dht.on('warning', () => {})
  dht.listen(port)
  return dht
}

/** What the status API shows: the UDP port once bound, and the routing table's size. */
export function dhtInfo (dht: DHT): { port?: number, nodes: number } {
  const port = dht.listening ? dht.address()?.port : undefined
  return { ...(port !== undefined ? { port } : {}), nodes: dht.nodes.count() }
}
