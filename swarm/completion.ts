import type { Logger } from 'pino'
import { hasBit } from '../lib/peer-wire.js'
import { BOTH_SEEDS, type PeerConn } from './peer-conn.js'
import { MAX_BANS, type PeerGate } from './peer-gate.js'
import { bytesBySource } from './peer-info.js'
import type { PendingPiece, PiecePicker } from './piece-picker.js'
import type { PieceStore } from './piece-store.js'
import type { Requester } from './requester.js'
import type { TorrentCounters } from './torrent-session.js'
import type { WebSeed } from './web-seed.js'
import type { WrittenPieces } from './written-pieces.js'

/**
 * How a torrent's pieces end, and the torrent: a completed piece's sha1 verdict and what follows
 * from it (bans, the disk write, a HAVE to every peer, interest), and `done`, which settles once
 * every piece is verified and written, or with the error that stopped the torrent.
 */

/** What the completion reads and changes of its torrent (torrent-session.ts). */
export interface CompletionHost {
  picker: PiecePicker
  peers: ReadonlySet<PeerConn>
  gate: PeerGate
  req: Requester
  counters: TorrentCounters
  webSeeds: readonly WebSeed[]
  log: Logger
  /** trace logging is on: each verified piece is logged */
  trace: boolean
}

export class Completion {
  readonly done: Promise<void>
  readonly #picker: PiecePicker
  readonly #peers: ReadonlySet<PeerConn>
  readonly #gate: PeerGate
  readonly #req: Requester
  readonly #counters: TorrentCounters
  readonly #webSeeds: readonly WebSeed[]
  readonly #log: Logger
  readonly #trace: boolean
  /** set by open(): until then no piece completes, nor the torrent */
  #store: PieceStore | undefined
  #disk: WrittenPieces | undefined
  #resolve!: () => void
  #reject!: (err: Error) => void
  #settled = false
  #finishing = false

  constructor (h: CompletionHost) {
    this.#picker = h.picker
    this.#peers = h.peers
    this.#gate = h.gate
    this.#req = h.req
    this.#counters = h.counters
    this.#webSeeds = h.webSeeds
    this.#log = h.log
    this.#trace = h.trace
    this.done = new Promise<void>((resolve, reject) => { this.#resolve = resolve; this.#reject = reject })
    this.done.catch(() => {})
  }

  /** The file is open and what it held is checked (the torrent is ready): pieces may complete from now on. */
  open (store: PieceStore, disk: WrittenPieces): void {
    this.#store = store
    this.#disk = disk
  }

  /** Piece `p` is whole (from peers' blocks or a web seed): its sha1 decides what follows. */
  pieceDone (p: PendingPiece): void {
    const buf = p.buf as Buffer
    const store = this.#store as PieceStore
    const good = store.verify(p.index, buf)
    this.#picker.settle(p, good)
    if (!good) {
      this.#counters.hashFailures++
      this.#banned(this.#gate.failed(p, this.#peers), p.index)
      if (p.from.size > 1) this.#req.fetchAlone(p.index)
      store.pool.retire(buf)
      return
    }
    this.#banned(this.#gate.passed(p, this.#peers), p.index)
    this.#req.fetchedAlone(p.index)
    if (this.#trace) this.#log.trace({ piece: p.index, from: [...p.from] }, 'piece verified')
    store.write(p.index, buf).then(() => {
      const disk = this.#disk as WrittenPieces
      disk.mark(p.index)
      disk.advance()
      this.#req.written(p.length)
    }, (err: Error) => { this.fail(err) })
    for (const peer of this.#peers) {
      peer.sendHave(p.index)
      if (!hasBit(peer.bits, p.index)) continue
      if (peer.amInterested) this.#req.updateInterest(peer)
    }
    this.checkDone()
  }

  /** Once every piece is verified: seeds dropped, interest withdrawn, and `done` resolved when the writes are flushed. */
  checkDone (): void {
    if (this.#store === undefined || !this.#picker.complete || this.#finishing) return
    this.#finishing = true
    this.#log.info({ ...bytesBySource(this.#peers), webSeeds: this.#counters.bytesFromWebSeeds, resumed: this.#counters.resumedBytes }, 'bytes received per connected source')
    for (const peer of [...this.#peers]) {
      if (peer.isSeed) peer.destroy(BOTH_SEEDS)
      else peer.setInterested(false)
    }
    void (this.#store as PieceStore).flush().then(() => {
      if (this.#settled) return
      this.#settled = true
      const pool = (this.#store as PieceStore).pool
      this.#log.info({ buffersTaken: pool.taken, buffersReused: pool.reused }, 'all pieces verified and written')
      this.#resolve()
    })
  }

  /** `done` rejects with `err`, unless it settled already. */
  fail (err: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#reject(err)
  }

  /** Senders the gate banned (peer-gate.ts) for piece `index`: counted, logged, and a web seed among them stopped. */
  #banned (keys: string[], index: number): void {
    for (const key of keys) {
      this.#counters.bannedPeers.push(key)
      if (this.#counters.bannedPeers.length > MAX_BANS) this.#counters.bannedPeers.shift()
      this.#log.warn({ peer: key, piece: index }, 'peer sent a piece that failed its sha1: disconnected and banned')
      for (const w of this.#webSeeds) if (w.url === key) w.ban()
    }
  }
}
