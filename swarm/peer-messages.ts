import { MAX_REQUEST_LENGTH, MsgId, clearSpareBits, hasBit, setBit } from '../lib/peer-wire.js'
import { OUR_PEX_ID, decodeExtendedHandshake, decodePex } from '../lib/peer-extension.js'
import type { PeerConn, PeerSession } from './peer-conn.js'
import { blockKey, type BlockRequest } from './piece-picker.js'

/**
 * What each message a peer sends means for its connection's state, checked against the
 * torrent's geometry; a peer that breaks the protocol is dropped with the reason. Blocks are
 * not here: they are the per-block path, and PeerConn handles them itself, next to the requests
 * they answer.
 */

/** the most requests a peer may queue with us: enough for 16 MiB in flight */
export const MAX_QUEUED_REQUESTS = 1024

/** One message other than a piece, from a connection bound to session `s`; `p` is valid only during the call (lib/peer-wire.ts). */
export function onPeerMessage (conn: PeerConn, s: PeerSession, id: number, p: Buffer): void {
  switch (id) {
    case MsgId.choke:
      conn.peerChoking = true
      s.onPeerChoke(conn, true)
      return
    case MsgId.unchoke:
      conn.peerChoking = false
      s.onPeerChoke(conn, false)
      return
    case MsgId.interested:
    case MsgId.notInterested:
      conn.peerInterested = id === MsgId.interested
      s.onPeerInterest(conn)
      return
    case MsgId.have: {
      if (p.length !== 4) { conn.destroy('malformed have'); return }
      const i = p.readUInt32BE(0)
      if (i >= s.pieceCount) { conn.destroy(`have for piece ${i} of ${s.pieceCount}`); return }
      if (hasBit(conn.bits, i)) return
      setBit(conn.bits, i)
      conn.haveCount++
      conn.lastHaveAt = Date.now()
      s.onPeerHave(conn, i)
      return
    }
    case MsgId.bitfield: {
      if (p.length !== conn.bits.length) { conn.destroy(`bitfield of ${p.length} bytes for ${s.pieceCount} pieces`); return }
      const bits = Uint8Array.from(p)
      clearSpareBits(bits, s.pieceCount)
      takeBitfield(conn, s, bits)
      return
    }
    case MsgId.request:
    case MsgId.cancel:
    case MsgId.reject: {
      if (p.length !== 12) { conn.destroy(`malformed ${id === MsgId.reject ? 'reject' : 'request'}`); return }
      const r = { index: p.readUInt32BE(0), begin: p.readUInt32BE(4), length: p.readUInt32BE(8) }
      if (id === MsgId.reject) { onReject(conn, s, r); return }
      if (id === MsgId.cancel) {
        const k = conn.uploadQueue.findIndex((q) => q.index === r.index && q.begin === r.begin && q.length === r.length)
        // BEP 6: a cancelled request still gets its one answer, here the reject
        if (k >= 0) { conn.uploadQueue.splice(k, 1); conn.reject(r) }
        return
      }
      if (r.index >= s.pieceCount || r.length === 0 || r.length > MAX_REQUEST_LENGTH || r.begin + r.length > s.pieceSize(r.index)) {
        conn.destroy(`bad request ${r.index}/${r.begin}/${r.length}`); return
      }
      // BEP 3: requests while choked are dropped; BEP 6: rejected
      if (conn.amChoking) { conn.reject(r); s.onPeerRequest(conn); return }
      if (conn.uploadQueue.length >= MAX_QUEUED_REQUESTS) { conn.destroy('too many queued requests'); return }
      conn.uploadQueue.push(r)
      s.onPeerRequest(conn)
      return
    }
    case MsgId.haveAll:
    case MsgId.haveNone:
      if (!conn.fast) return // not negotiated: ignored, as before BEP 6
      if (p.length !== 0) { conn.destroy('malformed have all/none'); return }
      if (id === MsgId.haveNone) { conn.gotBitfield = true; return }
      takeBitfield(conn, s, allPieces(conn.bits.length, s.pieceCount))
      return
    case MsgId.extended:
      onExtended(conn, s, p)
      return
    default:
      // port (DHT): not advertised. suggest and allowed fast (BEP 6) are hints we may ignore: we
      // follow rarity, and never request while choked.
  }
}

/** A bitfield or `have all`: the peer's pieces; a second one (aria2c sends one again after `interested`) or one after haves adds to them. */
function takeBitfield (conn: PeerConn, s: PeerSession, bits: Uint8Array): void {
  conn.lastHaveAt = Date.now()
  if (conn.gotBitfield || conn.haveCount > 0) {
    for (let i = 0; i < s.pieceCount; i++) {
      if (hasBit(bits, i) && !hasBit(conn.bits, i)) { setBit(conn.bits, i); conn.haveCount++; s.onPeerHave(conn, i) }
    }
    return
  }
  conn.gotBitfield = true
  conn.bits.set(bits)
  let n = 0
  for (let i = 0; i < s.pieceCount; i++) if (hasBit(conn.bits, i)) n++
  conn.haveCount = n
  s.onPeerBits(conn)
}

function allPieces (bytes: number, count: number): Uint8Array {
  const bits = new Uint8Array(bytes).fill(0xff)
  clearSpareBits(bits, count)
  return bits
}

/**
 * BEP 6: the peer will not send a block. One we still wait for goes back to the picker; one we
 * cancelled or took back at a choke was already. Not negotiated: ignored.
 */
function onReject (conn: PeerConn, s: PeerSession, r: BlockRequest): void {
  if (!conn.fast) return
  const key = blockKey(r.index, r.begin)
  const asked = conn.requested.get(key)
  if (asked === undefined || asked.index !== r.index || asked.length !== r.length) return
  conn.requested.delete(key)
  s.onPeerReject(conn, asked)
}

/** BEP 10: the extended handshake (id 0) and ut_pex; anything else (ut_metadata, …) we did not offer, so ignore it. A malformed one is ignored too: gossip is not worth the connection. */
function onExtended (conn: PeerConn, s: PeerSession, p: Buffer): void {
  if (p.length < 1) return
  const body = p.subarray(1)
  if (p[0] === 0) {
    const hs = decodeExtendedHandshake(body)
    if (hs === undefined) return
    conn.pexId = hs.pexId
    if (hs.port !== undefined) conn.listenPort = hs.port
    if (hs.client !== undefined) conn.client = hs.client
  } else if (p[0] === OUR_PEX_ID) {
    const msg = decodePex(body)
    if (msg !== undefined) s.onPeerPex(conn, msg)
  }
}
