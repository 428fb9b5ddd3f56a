// Minimal typings for untyped dependencies: only what imgdist calls.
declare module 'bencode' {
  const bencode: {
    encode: (value: unknown) => Uint8Array
    decode: (data: Uint8Array, start?: number, end?: number, encoding?: string) => unknown
  }
  export default bencode
}

declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events'
  export class Client extends EventEmitter {
    constructor (opts?: { bootstrap?: string[] | false })
    listen (port?: number, cb?: () => void): void
    address (): { port: number } | null
    destroy (cb?: () => void): void
    lookup (infoHash: string | Uint8Array, cb?: (err: Error | null, n: number) => void): void
    announce (infoHash: string | Uint8Array, port: number, cb?: (err: Error | null) => void): void
    /** the routing table */
    nodes: { count: () => number }
    listening: boolean
  }
}

/** tracker + DHT + LSD announces and lookups for one torrent (what webtorrent uses, used directly). */
declare module 'torrent-discovery' {
  import { EventEmitter } from 'node:events'
  export interface DiscoveryOpts {
    infoHash: string
    peerId: string
    port: number
    announce: string[]
    dht: unknown
    lsd: boolean
    tracker?: { getAnnounceOpts?: () => Record<string, number> } | false
    intervalMs?: number
  }
  export default class Discovery extends EventEmitter {
    constructor (opts: DiscoveryOpts)
    complete (opts?: Record<string, number>): void
    destroy (cb?: () => void): void
  }
}
