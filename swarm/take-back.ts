import type { PeerConn } from './peer-conn.js'
import type { BlockRequest, PiecePicker } from './piece-picker.js'

/**
 * Takes back the requests outstanding at a peer that `which` selects: the peer is sent a cancel
 * (unless it is closed, or `sendCancel` is false: after a choke the peer has dropped them
 * already) and the picker may ask another peer for those blocks. Returns whether any were.
 * One place for the session's releases and cancels and the origin share's (origin-share.ts).
 */
export function takeBack (peer: PeerConn, picker: PiecePicker, which: (r: BlockRequest) => boolean, sendCancel = true): boolean {
  let any = false
  for (const [key, r] of peer.requested) {
    if (!which(r)) continue
    if (sendCancel && !peer.closed) peer.cancel(key)
    else peer.requested.delete(key)
    picker.unrequest(r.index, r.begin)
    any = true
  }
  return any
}
