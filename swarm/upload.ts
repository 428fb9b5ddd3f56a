import type { Logger } from 'pino'
import { BLOCK_LENGTH } from '../lib/peer-wire.js'
import type { BlockRequest } from './piece-picker.js'
import type { PeerConn } from './peer-conn.js'
import type { PieceStore } from './piece-store.js'
import type { TokenBucket } from './rate-meter.js'

/**
 * The upload side of a torrent: who is unchoked, and the loop that answers one peer's queued
 * requests from the store. Kept apart from the session's download logic (torrent-session.ts),
 * which only tells it when a peer's interest or requests change.
 */

export const UPLOAD_SLOTS = 50

/**
 * Bytes of piece buffers that the blocks queued on one socket may keep alive; at least two
 * pieces, so that a peer reading a piece's blocks in order never pays a copy at a piece boundary.
 * A queued block that is a view of a piece keeps the whole piece buffer until its write completes,
 * and a request may be 1 byte: serving stops only at 1 MiB queued (peer-conn.ts), so a peer that
 * stopped reading and then asked 1 byte of every piece held the whole image in our memory (96 MiB
 * for 96 pieces of 1 MiB, 14 bytes of socket queue each). Past the budget a block goes out as a
 * copy, which the 1 MiB bound on the queue does bound. A peer reading in order (1 MiB pieces,
 * 16 KiB blocks) has at most three pieces in its queue, so the fast path never copies.
 */
export const PIN_BUDGET = 4 * 1024 * 1024

/**
 * The same across all connections of a torrent (at least four pieces). The per-connection budget
 * alone let many peers that stopped reading pin four pieces each: 200 connections, 800 pieces.
 * Honest peers rarely come near it (each reads in order and holds two or three pieces; a seed of
 * 1 MiB pieces reaches it only with a dozen peers all slow at once), and past it a block costs a
 * 16 KiB copy, not a refusal.
 */
export const TORRENT_PIN_BUDGET = 32 * 1024 * 1024

/** the piece buffers that queued blocks are views of, with how many blocks each: per connection and per torrent (keyed by its store) */
interface Pins { readonly count: Map<ArrayBufferLike, number>, bytes: number }
const pinsOf = new WeakMap<PeerConn | PieceStore, Pins>()

/** bytes of piece buffers the blocks queued on this peer's socket (or on all of a torrent's, given its store) keep alive (for the tests) */
export function pinnedBytes (owner: PeerConn | PieceStore): number { return pinsOf.get(owner)?.bytes ?? 0 }

export interface UploadDeps {
  readonly log: Logger
  readonly bucket: TokenBucket
  hasPiece: (i: number) => boolean
  store: () => PieceStore | undefined
  stopped: () => boolean
  /** a block handed to a socket */
  sent: (r: BlockRequest) => void
  /** whether to send a BEP 6 peer this block (egress-budget.ts); without it, every block we hold */
  allows?: (peer: PeerConn, r: BlockRequest) => boolean
}

/**
 * A peer became interested: unchoke it if a slot is free. A peer that loses interest stays
 * unchoked: choking it would race with the requests it sends once it is interested again (BEP 3
 * drops requests across a choke, silently for a peer without BEP 6's reject), and the bytes of
 * those dropped requests would be sent twice. An idle unchoked peer gives its slot up only to an interested
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
  // looked up once per loop, not per block: a session's store is set once, by start()
  let pins: BlockPins | undefined
  try {
    while (peer.uploadQueue.length > 0 && peer.writable && !peer.amChoking && !deps.stopped()) {
      const r = peer.uploadQueue[0] as BlockRequest
      if (!deps.hasPiece(r.index)) { deps.log.debug({ peer: peer.key, piece: r.index }, 'request for a piece we lack dropped'); peer.uploadQueue.shift(); peer.reject(r); continue }
      if (peer.fast && deps.allows !== undefined && !deps.allows(peer, r)) { peer.uploadQueue.shift(); peer.reject(r); continue }
      const wait = deps.bucket.take(r.length)
      if (wait > 0) { setTimeout(() => { void serve(peer, deps) }, wait).unref(); return }
      if (pins === undefined) { const s = deps.store() as PieceStore; pins = { conn: pinsFor(peer), torrent: pinsFor(s), store: s } }
      const store = pins.store
      // A whole piece is read (and cached) only for a block of 16 KiB or more that may pin it: a
      // 1-byte request of an uncached piece costs a 1-byte read, not a piece-sized one.
      const piece = store.cached(r.index) ??
        (r.length >= BLOCK_LENGTH && mayPin(pins, undefined) ? await store.read(r.index) : undefined)
      if (piece === undefined) {
        const copy = await store.readBlock(r.index, r.begin, r.length)
        // cancelled, choked or closed during the read: a block not sent must not count as uploaded
        if (peer.uploadQueue[0] !== r || peer.closed) continue
        peer.uploadQueue.shift()
        peer.sendBlock(r.index, r.begin, copy, noop)
      } else {
        if (peer.uploadQueue[0] !== r || peer.closed) { store.release(piece); continue }
        peer.uploadQueue.shift()
        sendView(peer, pins, piece, r)
        store.release(piece)
      }
      deps.sent(r)
    }
  } catch (err) {
    deps.log.error({ err: (err as Error).message }, 'cannot read a piece to upload')
    peer.destroy('local read error')
  } finally {
    peer.serving = false
  }
}

function noop (): void {}

function pinsFor (owner: PeerConn | PieceStore): Pins {
  let pins = pinsOf.get(owner)
  if (pins === undefined) { pins = { count: new Map(), bytes: 0 }; pinsOf.set(owner, pins) }
  return pins
}

interface BlockPins { readonly conn: Pins, readonly torrent: Pins, readonly store: PieceStore }

/** Whether a view of piece buffer `ab` (undefined: one not read yet) stays within both budgets. */
function mayPin (pins: BlockPins, ab: ArrayBufferLike | undefined): boolean {
  const size = pins.store.pool.size
  const conn = ab !== undefined && pins.conn.count.has(ab) ? 0 : size
  const torrent = ab !== undefined && pins.torrent.count.has(ab) ? 0 : size
  return pins.conn.bytes + conn <= Math.max(PIN_BUDGET, 2 * size) &&
    pins.torrent.bytes + torrent <= Math.max(TORRENT_PIN_BUDGET, 4 * size)
}

function pin (pins: Pins, ab: ArrayBufferLike): void {
  const n = pins.count.get(ab)
  if (n === undefined) pins.bytes += ab.byteLength
  pins.count.set(ab, (n ?? 0) + 1)
}

function unpin (pins: Pins, ab: ArrayBufferLike): void {
  const left = (pins.count.get(ab) ?? 1) - 1
  if (left > 0) pins.count.set(ab, left)
  else if (pins.count.delete(ab)) pins.bytes -= ab.byteLength
}

/** The block as a view of its piece, which the socket's write then holds (buffer-pool.ts), or a copy once the pins are over a budget. */
function sendView (peer: PeerConn, pins: BlockPins, piece: Buffer, r: BlockRequest): void {
  const view = piece.subarray(r.begin, r.begin + r.length)
  const ab = piece.buffer
  if (!mayPin(pins, ab)) { peer.sendBlock(r.index, r.begin, Buffer.from(view), noop); return }
  pin(pins.conn, ab)
  pin(pins.torrent, ab)
  pins.store.pool.hold(piece)
  peer.sendBlock(r.index, r.begin, view, () => {
    unpin(pins.conn, ab)
    unpin(pins.torrent, ab)
    pins.store.release(piece)
  })
}
