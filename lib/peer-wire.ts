import { ImgdistError } from './errors.js'
import { EXTENSION_BIT, EXTENSION_BYTE } from './peer-extension.js'

/**
 * The BitTorrent peer wire protocol (BEP 3) as bytes: the handshake and the length-prefixed
 * messages, with no sockets of its own. The agent's engine (swarm/) owns the connections;
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
  choke: 0, unchoke: 1, interested: 2, notInterested: 3, have: 4, bitfield: 5, request: 6, piece: 7, cancel: 8, port: 9,
  // BEP 6, the fast extension (both ends set FAST_BIT)
  suggest: 0x0d, haveAll: 0x0e, haveNone: 0x0f, reject: 0x10, allowedFast: 0x11,
  extended: 20
} as const

/**
 * BEP 6: reserved byte 7 (handshake byte 27), bit 0x04, "I speak the fast extension". On a
 * connection where both ends set it, every request gets exactly one answer, the block or a
 * `reject`, and the first message is a bitfield, `have all` or `have none`.
 */
export const FAST_BYTE = 27
export const FAST_BIT = 0x04

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

/** `extensions`: set the BEP 10 bit (lib/peer-extension.ts); `fast`: the BEP 6 bit. The other reserved bits stay zero (no DHT port message). */
export function encodeHandshake (infoHash: Uint8Array, peerId: Uint8Array, extensions = false, fast = false): Buffer {
  const b = Buffer.alloc(HANDSHAKE_LENGTH)
  b[0] = PSTR.length
  PSTR.copy(b, 1)
  if (extensions) b[EXTENSION_BYTE] = EXTENSION_BIT
  if (fast) b[FAST_BYTE] = FAST_BIT
  b.set(infoHash, 28)
  b.set(peerId, 48)
  return b
}

/** `extensions`: the peer set the BEP 10 bit; `fast`: the BEP 6 bit */
export interface Handshake { infoHash: Buffer, peerId: Buffer, extensions: boolean, fast: boolean }

export function decodeHandshake (b: Buffer): Handshake {
  if (b.length !== HANDSHAKE_LENGTH || b[0] !== PSTR.length || !b.subarray(1, 20).equals(PSTR)) {
    throw new WireError('not a BitTorrent handshake')
  }
  return {
    infoHash: Buffer.from(b.subarray(28, 48)),
    peerId: Buffer.from(b.subarray(48, 68)),
    extensions: ((b[EXTENSION_BYTE] as number) & EXTENSION_BIT) !== 0,
    fast: ((b[FAST_BYTE] as number) & FAST_BIT) !== 0
  }
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
  /** request, cancel and reject (BEP 6) share a layout */
  triple (id: number, index: number, begin: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(17)
    encode.tripleAt(b, 0, id, index, begin, length)
    return b
  },
  /** triple() into `b` at `off` (17 bytes): several requests in one buffer, one socket write */
  tripleAt (b: Buffer, off: number, id: number, index: number, begin: number, length: number): void {
    b.writeUInt32BE(13, off); b[off + 4] = id
    b.writeUInt32BE(index, off + 5); b.writeUInt32BE(begin, off + 9); b.writeUInt32BE(length, off + 13)
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
  /** any message but `piece`; payload excludes the id byte and is valid only during the call */
  onMessage: (id: number, payload: Buffer) => void
  /** `block` is valid only during the call (a view into the chunk or into the decoder's buffer): copy what must outlive it */
  onPiece: (index: number, begin: number, block: Buffer) => void
  onKeepAlive: () => void
}

/**
 * Incremental parser: push() socket chunks in order; it calls the handler once per complete
 * message. Throws WireError on a malformed stream (the caller drops the peer).
 *
 * Nothing of a chunk is kept after push() returns: messages that lie inside the chunk are handed
 * on as views, and the tail of one that does not is copied into a buffer the decoder owns and
 * reuses. So the caller may read every chunk into the same buffer (a socket's `onread`), and a
 * 16 KiB block split across TCP reads (the usual case behind a shaped link) costs one copy and
 * no allocation.
 */
export class WireDecoder {
  readonly #h: WireHandler
  /** the largest message accepted; the owner raises it once it knows the bitfield's size */
  maxMessage: number
  /** the part of a message received so far, when it spans chunks */
  #acc: Buffer = Buffer.allocUnsafe(0)
  #accLen = 0
  #handshaken = false

  /** maxMessage: the largest message accepted, e.g. the bitfield's size or a block plus 13 */
  constructor (handler: WireHandler, maxMessage: number) {
    this.#h = handler
    this.maxMessage = maxMessage
  }

  push (chunk: Buffer): void {
    let off = 0
    if (this.#accLen > 0) {
      off = this.#complete(chunk)
      if (off < 0) return
    }
    const end = chunk.length
    while (off < end) {
      const need = this.#sizeAt(chunk, off, end - off)
      if (need < 0 || end - off < need) break
      this.#dispatch(chunk.subarray(off, off + need))
      off += need
    }
    if (off < end) this.#keep(chunk, off, end)
  }

  /**
   * The whole size of the message starting at b[off] (length prefix included), or -1 when too
   * few bytes are there to tell. Throws when the length is over the limit.
   */
  #sizeAt (b: Buffer, off: number, avail: number): number {
    if (!this.#handshaken) return avail >= 1 ? HANDSHAKE_LENGTH : -1
    if (avail < 4) return -1
    const len = b.readUInt32BE(off)
    if (len > this.maxMessage) throw new WireError(`message of ${len} bytes exceeds the limit of ${this.maxMessage}`)
    return 4 + len
  }

  /** Adds the front of `chunk` to the message begun in #acc; returns where the rest starts, or -1 if the chunk is used up. */
  #complete (chunk: Buffer): number {
    let off = 0
    for (;;) {
      const need = this.#sizeAt(this.#acc, 0, this.#accLen)
      // Not enough to know the size yet (at most 3 bytes of a length prefix): take what tells it.
      const want = need < 0 ? 4 : need
      const k = Math.min(want - this.#accLen, chunk.length - off)
      this.#ensure(this.#accLen + k)
      chunk.copy(this.#acc, this.#accLen, off, off + k)
      this.#accLen += k
      off += k
      if (this.#accLen < want) return -1
      if (need < 0) continue
      this.#accLen = 0
      this.#dispatch(this.#acc.subarray(0, need))
      return off
    }
  }

  #keep (chunk: Buffer, off: number, end: number): void {
    this.#ensure(end - off)
    chunk.copy(this.#acc, 0, off, end)
    this.#accLen = end - off
  }

  #ensure (n: number): void {
    if (this.#acc.length >= n) return
    // Grown to the next power of two from 32 KiB, bounded by maxMessage via #sizeAt: one 16 KiB block needs 32 KiB once.
    let size = Math.max(32 * 1024, this.#acc.length)
    while (size < n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.#acc.copy(next, 0, 0, this.#accLen)
    this.#acc = next
  }

  #dispatch (msg: Buffer): void {
    if (!this.#handshaken) {
      this.#handshaken = true
      this.#h.onHandshake(decodeHandshake(msg))
      return
    }
    if (msg.length === 4) { this.#h.onKeepAlive(); return }
    const id = msg[4] as number
    if (id === MsgId.piece) {
      if (msg.length < 13) throw new WireError('piece message too short')
      this.#h.onPiece(msg.readUInt32BE(5), msg.readUInt32BE(9), msg.subarray(13))
    } else {
      this.#h.onMessage(id, msg.subarray(5))
    }
  }
}

/** Bitfield helpers: bit i of byte i>>3, most significant bit first (BEP 3). */
export function hasBit (bits: Uint8Array, i: number): boolean { return ((bits[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0 }
export function setBit (bits: Uint8Array, i: number): void { bits[i >> 3] = (bits[i >> 3] ?? 0) | (0x80 >> (i & 7)) }
export function clearBit (bits: Uint8Array, i: number): void { bits[i >> 3] = (bits[i >> 3] ?? 0) & ~(0x80 >> (i & 7)) }
/** Zeroes the spare bits after the last of `count` pieces in the last byte (a peer's bitfield must not set them; BEP 3). */
export function clearSpareBits (bits: Uint8Array, count: number): void {
  const spare = bits.length * 8 - count
  if (spare > 0) bits[bits.length - 1] = (bits[bits.length - 1] as number) & (0xff << spare)
}
