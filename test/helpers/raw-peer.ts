import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { MsgId, WireDecoder, encode, encodeHandshake } from '../../lib/peer-wire.js'

/** A hand-driven BitTorrent peer over a raw socket, for tests of what the engine does with a hostile or odd peer. */
export interface RawPeer {
  sock: Socket
  closed: Promise<void>
  isClosed: () => boolean
  requests: Array<{ index: number, begin: number, length: number }>
  /** BEP 6 rejects the engine sent, as "index/begin/length" */
  rejects: string[]
  got: number[]
  onRequest?: (r: { index: number, begin: number, length: number }) => void
  /** each piece message the engine sends; `block` is valid only during the call */
  onPiece?: (index: number, begin: number, block: Buffer) => void
  send: (b: Buffer) => void
}

/** `fast`: set the BEP 6 bit in the handshake */
export async function rawPeer (port: number, infoHash: string, opts: { prefix?: string, bits?: Uint8Array, unchoke?: boolean, read?: boolean, interested?: boolean, fast?: boolean } = {}): Promise<RawPeer> {
  const sock = connect({ host: '127.0.0.1', port })
  sock.on('error', () => {})
  await new Promise<void>((resolve) => sock.once('connect', () => { resolve() }))
  let isClosed = false
  const closed = new Promise<void>((resolve) => sock.once('close', () => { isClosed = true; resolve() }))
  const p: RawPeer = { sock, closed, isClosed: () => isClosed, requests: [], rejects: [], got: [], send: (b) => { if (!isClosed) sock.write(b) } }
  const dec = new WireDecoder({
    onHandshake: () => {},
    onKeepAlive: () => {},
    onMessage: (id, pl) => {
      p.got.push(id)
      if (id === MsgId.request) {
        const r = { index: pl.readUInt32BE(0), begin: pl.readUInt32BE(4), length: pl.readUInt32BE(8) }
        p.requests.push(r)
        p.onRequest?.(r)
      }
      if (id === MsgId.reject) p.rejects.push(`${pl.readUInt32BE(0)}/${pl.readUInt32BE(4)}/${pl.readUInt32BE(8)}`)
    },
    onPiece: (index, begin, block) => { p.got.push(MsgId.piece); p.onPiece?.(index, begin, block) }
  }, 64 * 1024 * 1024)
  if (opts.read !== false) sock.on('data', (c: Buffer) => { try { dec.push(c) } catch {} })
  const id = Buffer.concat([Buffer.from(opts.prefix ?? '-IM0100-', 'latin1'), randomBytes(12)])
  sock.write(encodeHandshake(Buffer.from(infoHash, 'hex'), id, false, opts.fast === true))
  if (opts.bits !== undefined) sock.write(encode.bitfield(opts.bits))
  if (opts.unchoke === true) sock.write(encode.simple(MsgId.unchoke))
  if (opts.interested === true) sock.write(encode.simple(MsgId.interested))
  return p
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export function pieceMsg (index: number, begin: number, block: Buffer): Buffer {
  return Buffer.concat([encode.pieceHeader(index, begin, block.length), block])
}
