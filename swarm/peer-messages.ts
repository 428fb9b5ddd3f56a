import { MAX_REQUEST_LENGTH, MsgId, hasBit, setBit } from '../lib/peer-wire.js'
import { OUR_PEX_ID, decodeExtendedHandshake, decodePex } from '../lib/peer-extension.js'
import type { PeerConn, PeerSession } from './peer-conn.js'

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
      s.onPeerHave(conn, i)
      return
    }
    case MsgId.bitfield: {
      if (p.length !== conn.bits.length) { conn.destroy(`bitfield of ${p.length} bytes for ${s.pieceCount} pieces`); return }
      const spare = conn.bits.length * 8 - s.pieceCount
      const bits = Uint8Array.from(p)
      if (spare > 0) bits[bits.length - 1] = (bits[bits.length - 1] as number) & (0xff << spare)
      if (conn.gotBitfield || conn.haveCount > 0) {
        // A second bitfield (aria2c sends one again after `interested`) or one after haves: take what it adds.
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
      return
    }
    case MsgId.request:
    case MsgId.cancel: {
      if (p.length !== 12) { conn.destroy('malformed request'); return }
      const r = { index: p.readUInt32BE(0), begin: p.readUInt32BE(4), length: p.readUInt32BE(8) }
      if (id === MsgId.cancel) {
        const k = conn.uploadQueue.findIndex((q) => q.index === r.index && q.begin === r.begin && q.length === r.length)
        if (k >= 0) conn.uploadQueue.splice(k, 1)
        return
      }
      if (r.index >= s.pieceCount || r.length === 0 || r.length > MAX_REQUEST_LENGTH || r.begin + r.length > s.pieceSize(r.index)) {
        conn.destroy(`bad request ${r.index}/${r.begin}/${r.length}`); return
      }
      if (conn.amChoking) { s.onPeerRequest(conn); return } // BEP 3: requests while choked are dropped
      if (conn.uploadQueue.length >= MAX_QUEUED_REQUESTS) { conn.destroy('too many queued requests'); return }
      conn.uploadQueue.push(r)
      s.onPeerRequest(conn)
      return
    }
    case MsgId.extended:
      onExtended(conn, s, p)
      return
    default:
      // port (DHT) and fast-extension messages: we advertised neither, so ignore
  }
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
