// Typings for the parts of webtorrent 2.8.x (untyped) that imgdist uses. Extend as needed;
// keep them true to webtorrent's lib/torrent.js, lib/peer.js and index.js.
declare module 'webtorrent' {
  import { EventEmitter } from 'node:events'

  export interface WebTorrentOptions {
    dht?: boolean | Record<string, unknown>
    tracker?: boolean | Record<string, unknown>
    lsd?: boolean
    utp?: boolean
    webSeeds?: boolean
    natUpnp?: boolean
    natPmp?: boolean
    torrentPort?: number
    dhtPort?: number
    maxConns?: number
    downloadLimit?: number
    uploadLimit?: number
    nodeId?: string | Uint8Array
    peerId?: string | Uint8Array
    blocklist?: unknown
  }

  export interface AddOptions {
    path?: string
    announce?: string[]
    urlList?: string[]
    strategy?: 'sequential' | 'rarest'
    skipVerify?: boolean
    deselect?: boolean
    store?: unknown
    storeOpts?: Record<string, unknown>
    private?: boolean
    maxWebConns?: number
    addUID?: boolean
    rootDir?: string
    destroyStoreOnDestroy?: boolean
    paused?: boolean
    bitfield?: Uint8Array
  }

  export interface Wire extends EventEmitter {
    type: string // 'tcpIncoming' | 'tcpOutgoing' | 'utpIncoming' | 'utpOutgoing' | 'webSeed' | 'webrtc'
    remoteAddress?: string
    remotePort?: number
    peerId?: string
    downloaded: number
    uploaded: number
    amChoking: boolean
    peerChoking: boolean
    downloadSpeed: () => number
    uploadSpeed: () => number
    destroy: () => void
  }

  export interface TorrentFile { name: string, path: string, length: number, downloaded: number, progress: number }

  export interface Torrent extends EventEmitter {
    infoHash: string
    name: string
    length: number
    pieceLength: number
    lastPieceLength: number
    pieces: Array<unknown | null>
    path: string
    files: TorrentFile[]
    wires: Wire[]
    ready: boolean
    done: boolean
    paused: boolean
    destroyed: boolean
    received: number
    downloaded: number
    uploaded: number
    progress: number
    numPeers: number
    downloadSpeed: number
    uploadSpeed: number
    timeRemaining: number
    bitfield: { get: (index: number) => boolean, buffer: Uint8Array }
    strategy?: string
    addPeer: (peer: string) => boolean
    addWebSeed: (url: string) => void
    removePeer: (peer: string) => void
    pause: () => void
    resume: () => void
    destroy: (opts?: { destroyStore?: boolean }, cb?: (err?: Error | null) => void) => void
    rescanFiles?: (cb?: (err?: Error | null) => void) => void
  }

  export default class WebTorrent extends EventEmitter {
    constructor (opts?: WebTorrentOptions)
    torrents: Torrent[]
    torrentPort: number
    dhtPort: number
    downloadSpeed: number
    uploadSpeed: number
    ratio: number
    destroyed: boolean
    dht?: EventEmitter & { nodes?: { count: () => number }, toJSON?: () => unknown }
    add (torrent: Uint8Array | string | Record<string, unknown>, opts?: AddOptions, onTorrent?: (t: Torrent) => void): Torrent
    seed (input: string | string[] | Uint8Array, opts?: AddOptions & { name?: string, announce?: string[], pieceLength?: number }, onSeed?: (t: Torrent) => void): Torrent
    get (infoHash: string): Promise<Torrent | null>
    remove (torrent: string | Torrent, opts?: { destroyStore?: boolean }, cb?: (err?: Error | null) => void): Promise<void>
    address (): { address: string, family: string, port: number } | null
    throttleDownload (rate: number): boolean | undefined
    throttleUpload (rate: number): boolean | undefined
    destroy (cb?: (err?: Error | null) => void): void
  }
}

declare module 'bittorrent-tracker' {
  import { EventEmitter } from 'node:events'
  export class Server extends EventEmitter {
    constructor (opts?: { http?: boolean, udp?: boolean, ws?: boolean, stats?: boolean, trustProxy?: boolean, interval?: number, filter?: (infoHash: string, params: unknown, cb: (err: Error | null) => void) => void })
    http: import('node:http').Server | null
    onHttpRequest: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, opts?: Record<string, unknown>) => void
    /** `peers`: an LRU keyed by address; `peek` does not refresh an entry */
    torrents: Record<string, { complete: number, incomplete: number, peers: { length: number, keys: string[], peek: (key: string) => { complete: boolean, peerId: string } | undefined } }>
    listen (port: number, hostname?: string, cb?: () => void): void
    close (cb?: () => void): void
  }
  export class Client extends EventEmitter {
    constructor (opts: Record<string, unknown>)
    start (): void
    stop (): void
    destroy (cb?: () => void): void
  }
}
