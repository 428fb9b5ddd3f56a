import { ImgdistError } from './errors.js'

/**
 * The BitTorrent peer wire protocol (BEP 3) as bytes: the handshake and the length-prefixed
 * messages, with no sockets of its own. The agent's engine (agent/swarm/) owns the connections;
 * this file only turns bytes into messages and back, with every length bounded.
 *
 * Hand-written rather than bittorrent-protocol because the data path is the product's hot loop:
 * a `piece` message that lies inside one socket chunk is handed on as a view (no copy), and a
 * block is written as header + the caller's buffer in one writev. Profiling webtorrent 2.8.5
 * showed concatenation and stream plumbing in bittorrent-protocol among the top costs per GiB.
 */

export const HANDSHAKE_LENGTH = 68
const PSTR = Buffer.from('BitTorrent protocol', 'latin1')
export const BLOCK_LENGTH = 16 * 1024
/** The largest request served: BEP 3 says 16 KiB; some clients ask 32 KiB; nobody needs more. */
export const MAX_REQUEST_LENGTH = 128 * 1024

export const MsgId = {
  choke: 0, unchoke: 1, interested: 2, notInterested: 3, have: 4, bitfield: 5, request: 6, piece: 7, cancel: 8, port: 9
} as const

export class WireError extends ImgdistError {
  constructor (message: string) { super('PEER_PROTOCOL', message) }
}

/** Azureus-style client id: `-IM0100-` plus 12 random bytes. Peers recognise imgdist agents by it. */
export const PEER_ID_PREFIX = '-IM0100-'
/**
 * The index server's origin seed runs the same engine under another id: agents must not take it
 * for a fellow agent, since the share rule that keeps origin egress near one copy applies only
 * to seeds that are not agents.
 */
export const ORIGIN_PEER_ID_PREFIX = '-IX0100-'
export function isImgdistPeerId (id: Uint8Array): boolean {
  return Buffer.from(id.subarray(0, 4)).toString('latin1') === PEER_ID_PREFIX.slice(0, 4)
}

export function encodeHandshake (infoHash: Uint8Array, peerId: Uint8Array): Buffer {
  const b = Buffer.alloc(HANDSHAKE_LENGTH)
  b[0] = PSTR.length
  PSTR.copy(b, 1)
  // reserved bytes 20..27 stay zero: no extension protocol, no DHT port message, no fast extension
  b.set(infoHash, 28)
  b.set(peerId, 48)
  return b
}

export interface Handshake { infoHash: Buffer, peerId: Buffer }

export function decodeHandshake (b: Buffer): Handshake {
  if (b.length !== HANDSHAKE_LENGTH || b[0] !== PSTR.length || !b.subarray(1, 20).equals(PSTR)) {
    throw new WireError('not a BitTorrent handshake')
  }
  return { infoHash: Buffer.from(b.subarray(28, 48)), peerId: Buffer.from(b.subarray(48, 68)) }
}

function header (len: number, id: number): Buffer {
  const b = Buffer.allocUnsafe(5)
  b.writeUInt32BE(len, 0)
  b[4] = id
  return b
}

export const encode = {
  keepAlive: (): Buffer => Buffer.alloc(4),
  simple: (id: number): Buffer => header(1, id),
  have (index: number): Buffer {
    const b = Buffer.allocUnsafe(9)
    b.writeUInt32BE(5, 0); b[4] = MsgId.have; b.writeUInt32BE(index, 5)
    return b
  },
  bitfield (bits: Uint8Array): Buffer {
    return Buffer.concat([header(1 + bits.length, MsgId.bitfield), bits])
  },
  /** request and cancel share a layout */
  triple (id: number, index: number, begin: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(17)
    b.writeUInt32BE(13, 0); b[4] = id
    b.writeUInt32BE(index, 5); b.writeUInt32BE(begin, 9); b.writeUInt32BE(length, 13)
    return b
  },
  /** the 13 bytes before a block; the block itself is written after it unchanged */
  pieceHeader (index: number, begin: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(13)
    b.writeUInt32BE(9 + length, 0); b[4] = MsgId.piece
    b.writeUInt32BE(index, 5); b.writeUInt32BE(begin, 9)
    return b
  }
}

export interface WireHandler {
  onHandshake: (h: Handshake) => void
  /** any message but `piece`; payload excludes the id byte and may be a view into a socket chunk */
  onMessage: (id: number, payload: Buffer) => void
  /** `block` may be a view into a socket chunk: copy it before the next push() if it must outlive it */
  onPiece: (index: number, begin: number, block: Buffer) => void
  onKeepAlive: () => void
}

/**
 * Incremental parser: push() socket chunks in order; it calls the handler once per complete
 * message. Throws WireError on a malformed stream (the caller drops the peer).
 */
export class WireDecoder {
  readonly #h: WireHandler
  /** the largest message accepted; the owner raises it once it knows the bitfield's size */
  maxMessage: number
  #chunks: Buffer[] = []
  #buffered = 0
  #handshaken = false

  /** maxMessage: the largest message accepted, e.g. the bitfield's size or a block plus 13 */
  constructor (handler: WireHandler, maxMessage: number) {
    this.#h = handler
    this.maxMessage = maxMessage
  }

  push (chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    for (;;) {
      if (!this.#handshaken) {
        if (this.#buffered < HANDSHAKE_LENGTH) return
        this.#handshaken = true
        this.#h.onHandshake(decodeHandshake(this.#take(HANDSHAKE_LENGTH)))
        continue
      }
      if (this.#buffered < 4) return
      const len = this.#peekUInt32()
      if (len > this.maxMessage) throw new WireError(`message of ${len} bytes exceeds the limit of ${this.maxMessage}`)
      if (this.#buffered < 4 + len) return
      const msg = this.#take(4 + len)
      if (len === 0) { this.#h.onKeepAlive(); continue }
      const id = msg[4] as number
      if (id === MsgId.piece) {
        if (len < 9) throw new WireError('piece message too short')
        this.#h.onPiece(msg.readUInt32BE(5), msg.readUInt32BE(9), msg.subarray(13))
      } else {
        this.#h.onMessage(id, msg.subarray(5))
      }
    }
  }

  #peekUInt32 (): number {
    const first = this.#chunks[0] as Buffer
    if (first.length >= 4) return first.readUInt32BE(0)
    return this.#take(4, true).readUInt32BE(0)
  }

  /** n bytes off the front: a view when they lie in one chunk, else one copy. */
  #take (n: number, peek = false): Buffer {
    const first = this.#chunks[0] as Buffer
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (!peek) {
        if (first.length === n) this.#chunks.shift()
        else this.#chunks[0] = first.subarray(n)
        this.#buffered -= n
      }
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let off = 0
    let i = 0
    while (off < n) {
      const c = this.#chunks[i] as Buffer
      const k = Math.min(c.length, n - off)
      c.copy(out, off, 0, k)
      off += k
      if (!peek) {
        if (k === c.length) { this.#chunks.shift(); continue }
        this.#chunks[0] = c.subarray(k)
      } else i++
    }
    if (!peek) this.#buffered -= n
    return out
  }
}

/** Bitfield helpers: bit i of byte i>>3, most significant bit first (BEP 3). */
export function hasBit (bits: Uint8Array, i: number): boolean { return ((bits[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0 }
export function setBit (bits: Uint8Array, i: number): void { bits[i >> 3] = (bits[i >> 3] ?? 0) | (0x80 >> (i & 7)) }
