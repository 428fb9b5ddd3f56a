import type { Socket } from 'node:net'
import {
  BLOCK_LENGTH, MAX_REQUEST_LENGTH, MsgId, WireDecoder, WireError, encode, encodeHandshake, isImgdistPeerId, type Handshake
} from '../lib/peer-wire.js'
import { canonicalHost, joinHostPort } from '../lib/host-port.js'
import type { PexMessage } from '../lib/peer-extension.js'
import { onPeerMessage } from './peer-messages.js'
import { blockKey, type BlockRequest } from './piece-picker.js'
import { RateMeter } from './rate-meter.js'

/**
 * One TCP connection to one peer: its choke/interest state, what it has, what we asked it
 * for and what it asked us for. Every message is checked against the torrent's geometry (blocks
 * here, the others in peer-messages.ts) and a peer that breaks the protocol is dropped with the
 * reason. Decisions (what to request, whom to serve) belong to the session; this class only
 * keeps the state straight.
 */

/** why a connection was closed when both ends had every piece (the swarm does not dial that address again for a while) */
export const BOTH_SEEDS = 'both sides are seeds'

export interface PeerSession {
  readonly pieceCount: number
  pieceSize: (i: number) => number
  onPeerBits: (peer: PeerConn) => void
  onPeerHave: (peer: PeerConn, i: number) => void
  onPeerChoke: (peer: PeerConn, choked: boolean) => void
  onPeerInterest: (peer: PeerConn) => void
  onPeerRequest: (peer: PeerConn) => void
  onPeerBlock: (peer: PeerConn, index: number, begin: number, block: Buffer) => void
  /** BEP 6: the peer will not send a block we asked for (already taken out of `requested`) */
  onPeerReject: (peer: PeerConn, r: BlockRequest) => void
  onPeerClose: (peer: PeerConn, reason: string) => void
  /** our BEP 10 handshake for this torrent, sent after the bitfield to peers that set the extension bit */
  extendedHandshake: () => Buffer
  /** a ut_pex message from the peer, decoded and bounded (only if our extended handshake offered ut_pex) */
  onPeerPex: (peer: PeerConn, msg: PexMessage) => void
}

/** how we came to know a connection's address: a discovery source, `pex`, `manual` (addPeer) or `incoming` */
export type PeerSource = 'tracker' | 'dht' | 'lsd' | 'pex' | 'manual' | 'incoming'

const HIGH_WATER = 1024 * 1024

export class PeerConn {
  readonly socket: Socket
  /** host:port as dialled, or as seen for an incoming connection */
  readonly key: string
  peerId: Buffer | undefined
  imgdist = false
  readonly source: PeerSource
  /** the peer set the BEP 10 bit in its handshake */
  extensions = false
  /** the peer set the BEP 6 bit (ours is always set): requests are answered by a block or a reject, both ways */
  fast = false
  /** from its extended handshake: its id for our ut_pex messages, its listening port, its client */
  pexId: number | undefined
  listenPort: number | undefined
  client: string | undefined
  /** what our ut_pex messages told this peer so far (listen addresses), and when the last went out (swarm/pex.ts) */
  readonly pexSent = new Set<string>()
  pexSentAt = 0
  #session: PeerSession | undefined
  bits = new Uint8Array(0)
  haveCount = 0
  /** when its count of pieces last grew (or it connected): an origin with an egress budget serves a peer that gets nothing elsewhere (egress-budget.ts) */
  lastHaveAt = Date.now()
  gotBitfield = false
  amChoking = true
  amInterested = false
  peerChoking = true
  peerInterested = false
  /** block keys we asked for, with the request itself */
  readonly requested = new Map<number, BlockRequest>()
  /**
   * Pieces this peer rejected a request for (BEP 6), with when it may be asked for them again:
   * the picker leaves them to other peers meanwhile (requester.ts). An origin over its egress
   * budget rejects what other agents can send (egress-budget.ts).
   */
  readonly refused = new Map<number, number>()
  readonly uploadQueue: BlockRequest[] = []
  readonly down = new RateMeter()
  /** bytes of blocks that arrived when we already had them (endgame, cancels, dropped requests) */
  wastedBytes = 0
  readonly up = new RateMeter()
  lastReceived = Date.now()
  lastSent = Date.now()
  /** when the last block came, or when requests were first outstanding: a stalled peer's requests go elsewhere */
  lastBlockAt = Date.now()
  snubbed = false
  /** the session's upload loop is running for this peer */
  serving = false
  closed = false
  readonly #decoder: WireDecoder

  constructor (socket: Socket, key: string, source: PeerSource, onHandshake: (conn: PeerConn, h: Handshake) => void) {
    this.socket = socket
    this.key = key
    this.source = source
    this.#decoder = new WireDecoder({
      onHandshake: (h) => { this.peerId = h.peerId; this.imgdist = isImgdistPeerId(h.peerId); this.extensions = h.extensions; this.fast = h.fast; onHandshake(this, h) },
      onKeepAlive: () => {},
      onMessage: (id, payload) => {
        const s = this.#session
        if (s === undefined) this.destroy('message before the handshake completed')
        else onPeerMessage(this, s, id, payload)
      },
      onPiece: (index, begin, block) => { this.#onPiece(index, begin, block) }
    }, 13 + MAX_REQUEST_LENGTH)
    socket.setNoDelay(true)
    socket.on('error', (err) => { this.destroy(err.message) })
    socket.on('close', () => { this.destroy('connection closed') })
    socket.on('drain', () => { this.#session?.onPeerRequest(this) })
  }

  /** Bytes from the socket, in order (socket-read.ts calls it); `chunk` need not outlive the call, the decoder keeps no view of it. */
  receive (chunk: Buffer): void {
    if (this.closed) return
    this.lastReceived = Date.now()
    // Everything the chunk makes us send this peer (blocks it asked for, our next requests) leaves
    // in one writev rather than one per message: a chunk holds many requests, and each block sent
    // alone was a syscall and a trip through the stream machinery.
    this.socket.cork()
    try { this.#decoder.push(chunk) } catch (err) { this.destroy(err instanceof WireError ? err.message : `protocol error: ${(err as Error).message}`) } finally { this.socket.uncork() }
  }

  get session (): PeerSession | undefined { return this.#session }
  get incoming (): boolean { return this.source === 'incoming' }
  get isSeed (): boolean { return this.#session !== undefined && this.haveCount === this.#session.pieceCount }
  get writable (): boolean { return !this.closed && this.socket.writableLength < HIGH_WATER }

  /**
   * Ours always sets the BEP 10 bit (the extended handshake tells peers our listening port even
   * when PEX is off) and the BEP 6 bit (a request we will not serve is rejected, not dropped).
   */
  sendHandshake (infoHash: Uint8Array, peerId: Uint8Array): void { this.#write(encodeHandshake(infoHash, peerId, true, true)) }

  /**
   * Where the peer accepts connections, as "host:port": the address dialled, or for an incoming
   * connection its address with the port from its extended handshake (undefined without one).
   */
  get listenKey (): string | undefined {
    if (!this.incoming) return this.key
    const raw = this.socket.remoteAddress
    const host = raw !== undefined ? canonicalHost(raw) : undefined
    if (host === undefined || this.listenPort === undefined) return undefined
    return joinHostPort(host, this.listenPort)
  }

  /**
   * Binds the connection to a torrent once the handshake named it; sends our bitfield if we have
   * pieces (else `have none` to a BEP 6 peer, which must get one of the two), then our extended
   * handshake.
   */
  attach (session: PeerSession, ourBits: Uint8Array, ourHaveCount: number): void {
    this.#session = session
    this.bits = new Uint8Array(Math.ceil(session.pieceCount / 8))
    this.#decoder.maxMessage = Math.max(this.#decoder.maxMessage, 1 + this.bits.length)
    if (ourHaveCount > 0) this.#write(encode.bitfield(ourBits))
    else if (this.fast) this.#write(encode.simple(MsgId.haveNone))
    if (this.extensions) this.#write(session.extendedHandshake())
  }

  /** an encoded ut_pex message (swarm/pex.ts) */
  sendPex (msg: Buffer): void { this.#write(msg) }

  setInterested (on: boolean): void {
    if (this.amInterested === on) return
    this.amInterested = on
    this.#write(encode.simple(on ? MsgId.interested : MsgId.notInterested))
  }

  setChoking (on: boolean): void {
    if (this.amChoking === on) return
    this.amChoking = on
    this.#write(encode.simple(on ? MsgId.choke : MsgId.unchoke))
    if (on) {
      // BEP 6: a choke no longer drops the requests by itself; each gets its reject.
      for (const r of this.uploadQueue) this.reject(r)
      this.uploadQueue.length = 0
    }
  }

  /** A request of this peer's that we will not serve: a reject under BEP 6; without it, BEP 3's silence. */
  reject (r: BlockRequest): void {
    if (this.fast) this.#write(encode.triple(MsgId.reject, r.index, r.begin, r.length))
  }

  sendHave (i: number): void { this.#write(encode.have(i)) }
  keepAlive (): void { this.#write(encode.keepAlive()) }

  /**
   * Asks for the blocks, in one buffer and one socket write: a stream write per 17-byte request
   * was a fifth of what a downloading agent's JavaScript allocated (session 29's sampling heap
   * profile), garbage that grew V8's young generation.
   */
  request (reqs: readonly BlockRequest[]): void {
    if (reqs.length === 0) return
    if (this.requested.size === 0) this.lastBlockAt = Date.now()
    const b = Buffer.allocUnsafe(17 * reqs.length)
    reqs.forEach((r, k) => {
      this.requested.set(blockKey(r.index, r.begin), r)
      encode.tripleAt(b, 17 * k, MsgId.request, r.index, r.begin, r.length)
    })
    this.#write(b)
  }

  cancel (key: number): void {
    const r = this.requested.get(key)
    if (r === undefined) return
    this.requested.delete(key)
    this.#write(encode.triple(MsgId.cancel, r.index, r.begin, r.length))
  }

  /**
   * Header + block in one writev. `block` must not change until `written` is called (the socket
   * has handed it to the kernel, or was destroyed); `written` is called exactly once.
   */
  sendBlock (index: number, begin: number, block: Buffer, written: () => void): void {
    if (this.closed) { written(); return }
    this.socket.cork()
    this.socket.write(encode.pieceHeader(index, begin, block.length))
    this.socket.write(block, written)
    this.socket.uncork()
    this.lastSent = Date.now()
    this.up.add(block.length)
  }

  destroy (reason: string): void {
    if (this.closed) return
    this.closed = true
    this.socket.destroy()
    this.#session?.onPeerClose(this, reason)
  }

  #write (b: Buffer): void {
    if (this.closed) return
    this.lastSent = Date.now()
    this.socket.write(b)
  }

  #onPiece (index: number, begin: number, block: Buffer): void {
    const s = this.#session
    if (s === undefined) { this.destroy('piece before the handshake completed'); return }
    // We ask only for 16 KiB blocks (a piece's last one shorter): other geometry answers nothing we
    // sent. Checked before blockKey(), for piece(0, i*2^24 + b*16384) made the key of block (i, b):
    // our request for it vanished while the picker still counted it asked, and the download stalled.
    if (index >= s.pieceCount || begin % BLOCK_LENGTH !== 0 || begin >= s.pieceSize(index) ||
        block.length !== Math.min(BLOCK_LENGTH, s.pieceSize(index) - begin)) {
      this.destroy(`piece ${index}/${begin} of ${block.length} bytes is no block of this torrent`); return
    }
    const key = blockKey(index, begin)
    const r = this.requested.get(key)
    if (r === undefined || r.index !== index || r.begin !== begin || r.length !== block.length) {
      // Not asked for, or cancelled while on its way (every client does that): counted, not stored.
      this.down.add(block.length)
      return
    }
    this.requested.delete(key)
    this.lastBlockAt = Date.now()
    this.snubbed = false
    this.down.add(block.length)
    s.onPeerBlock(this, index, begin, block)
  }
}
