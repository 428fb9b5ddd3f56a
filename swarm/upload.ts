import type { Logger } from 'pino'
import type { PeerConn } from './peer-conn.js'
import type { PieceStore } from './piece-store.js'
import type { TokenBucket } from './rate-meter.js'

/**
 * The upload side of a torrent: who is unchoked, and the loop that answers one peer's queued
 * requests from the store. Kept apart from the session's download logic (torrent-session.ts),
 * which only tells it when a peer's interest or requests change.
 */

export const UPLOAD_SLOTS = 50

export interface UploadDeps {
  readonly log: Logger
  readonly bucket: TokenBucket
  hasPiece: (i: number) => boolean
  store: () => PieceStore | undefined
  stopped: () => boolean
  /** bytes of blocks handed to a socket */
  sent: (bytes: number) => void
}

/**
 * A peer became interested: unchoke it if a slot is free. A peer that loses interest stays
 * unchoked: choking it would race with the requests it sends once it is interested again (BEP 3
 * drops requests across a choke, and we have no BEP 6 reject), and the bytes of those dropped
 * requests would be sent twice. An idle unchoked peer gives its slot up only to an interested
 * one when all slots are taken.
 */
export function admit (peer: PeerConn, peers: Iterable<PeerConn>): void {
  if (!peer.peerInterested || !peer.amChoking) return
  let unchoked = 0
  let idle: PeerConn | undefined
  for (const p of peers) {
    if (p.amChoking) continue
    unchoked++
    if (!p.peerInterested) idle = p
  }
  if (unchoked >= UPLOAD_SLOTS && idle !== undefined) { idle.setChoking(true); unchoked-- }
  if (unchoked < UPLOAD_SLOTS) peer.setChoking(false)
}

/** Sends the peer's queued blocks while its socket takes them; one loop per peer at a time. */
export async function serve (peer: PeerConn, deps: UploadDeps): Promise<void> {
  if (peer.serving) return
  peer.serving = true
  try {
    while (peer.uploadQueue.length > 0 && peer.writable && !peer.amChoking && !deps.stopped()) {
      const r = peer.uploadQueue[0] as { index: number, begin: number, length: number }
      if (!deps.hasPiece(r.index)) { deps.log.debug({ peer: peer.key, piece: r.index }, 'request for a piece we lack dropped'); peer.uploadQueue.shift(); continue }
      const wait = deps.bucket.take(r.length)
      if (wait > 0) { setTimeout(() => { void serve(peer, deps) }, wait).unref(); return }
      const store = deps.store() as PieceStore
      const buf = store.cached(r.index) ?? await store.read(r.index)
      if (peer.uploadQueue[0] !== r) { store.release(buf); continue } // cancelled or choked meanwhile
      peer.uploadQueue.shift()
      // The socket's write holds the piece buffer in place of ours (buffer-pool.ts).
      store.pool.hold(buf)
      peer.sendBlock(r.index, r.begin, buf.subarray(r.begin, r.begin + r.length), () => { store.release(buf) })
      store.release(buf)
      deps.sent(r.length)
    }
  } catch (err) {
    deps.log.error({ err: (err as Error).message }, 'cannot read a piece to upload')
    peer.destroy('local read error')
  } finally {
    peer.serving = false
  }
}
