// Typings for bittorrent-protocol (a webtorrent dependency) as the corrupt-peer test helper uses it.
declare module 'bittorrent-protocol' {
  import { Duplex } from 'node:stream'
  export default class Wire extends Duplex {
    constructor ()
    handshake (infoHash: string, peerId: string, extensions?: Record<string, boolean>): void
    bitfield (bitfield: Uint8Array): void
    unchoke (): void
    destroy (): this
  }
}
