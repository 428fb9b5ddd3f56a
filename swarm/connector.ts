import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Handshake } from '../lib/peer-wire.js'
import { canonicalAddr, canonicalHost, joinHostPort, parseHostPort } from '../lib/host-port.js'
import { PeerConn, type PeerSource } from './peer-conn.js'
import { adopt, dial } from './socket-read.js'
import { connectedTo, type Candidates } from './candidates.js'
import { MAX_PENDING_HANDSHAKES, PendingHandshakes, handshakeDeadline } from './handshake-deadline.js'
import { OwnAddresses } from './own-addresses.js'
import type { TorrentHandle } from './torrent-session.js'

/**
 * How a swarm's connections come to be: addresses found for a torrent dialled within its
 * connection limit (never our own), connections accepted on the shared port handed to the
 * torrent their handshake names, and either kind admitted only if the torrent takes it
 * (peer-gate.ts). Both handshake deadlines are handshake-deadline.ts.
 */

const DIAL_TIMEOUT_MS = 10_000

/** What the connector needs of one torrent: its handle, the addresses it may dial, and those being dialled now. */
export interface DialTarget { handle: TorrentHandle, candidates: Candidates, dialing: Set<string> }

export interface ConnectorDeps {
  peerId: Buffer
  log: Logger
  maxConns: number
  handshakeMs: number
  /** the torrent port, once listening: a candidate at it on one of our addresses is us */
  port: () => number | undefined
  /** the torrent an incoming handshake names, if we have it */
  target: (infoHash: string) => DialTarget | undefined
}

export class Connector {
  readonly #peerId: Buffer
  readonly #log: Logger
  readonly #maxConns: number
  readonly #handshakeMs: number
  readonly #port: () => number | undefined
  readonly #target: (infoHash: string) => DialTarget | undefined
  readonly #incoming = new Set<Socket>()
  readonly #pending: PendingHandshakes
  readonly #own: OwnAddresses
  #closed = false

  constructor (deps: ConnectorDeps) {
    this.#peerId = deps.peerId
    this.#log = deps.log
    this.#maxConns = deps.maxConns
    this.#handshakeMs = deps.handshakeMs
    this.#port = deps.port
    this.#target = deps.target
    this.#own = new OwnAddresses(deps.log)
    this.#pending = new PendingHandshakes(deps.handshakeMs, Math.max(MAX_PENDING_HANDSHAKES, deps.maxConns))
  }

  /** An address from a tracker, the DHT, LSD, a peer's PEX or addPeer: remembered (the first source kept) and dialled, if the bounded table (candidates.ts) takes it. */
  found (e: DialTarget, addrIn: string, source: PeerSource, via?: string): void {
    const addr = canonicalAddr(addrIn) // one key per peer, however the source spelt it
    if (addr === undefined) return
    if (e.handle.torrent.private && (source === 'dht' || source === 'lsd' || source === 'pex')) return // BEP 27: trackers only
    if (e.candidates.add(addr, source, via)) this.#dial(e, addr)
  }

  /** The swarm's tick: dials the torrent's candidates that are due, while it has room. */
  dialDue (e: DialTarget, now: number): void {
    if (!e.handle.ready || e.handle.destroyed || e.handle.peers.size + e.dialing.size >= this.#maxConns) return
    for (const addr of e.candidates.due(now)) {
      if (e.handle.peers.size + e.dialing.size >= this.#maxConns) break
      this.#dial(e, addr)
    }
  }

  /** No more dials or accepts; connections still waiting for their handshake are closed. */
  close (): void {
    this.#closed = true
    for (const s of this.#incoming) s.destroy()
  }

  #dial (e: DialTarget, addr: string): void {
    const h = e.handle
    if (this.#closed || h.destroyed || !h.ready || h.isBanned(addr) || e.dialing.has(addr)) return
    if (h.peers.size + e.dialing.size >= this.#maxConns) return
    if (connectedTo(h.peers, addr)) return
    const c = e.candidates.get(addr)
    if (c !== undefined && c.nextAt > Date.now()) return
    const a = parseHostPort(addr)
    if (a === undefined) return
    const { host, port } = a
    if (port === this.#port() && this.#own.has(host)) return // ourselves, as the tracker lists us
    e.dialing.add(addr)
    this.#log.debug({ peer: addr, found: c?.source ?? 'manual' }, 'dialling')
    let conn: PeerConn | undefined
    const socket = dial(host, port, () => conn)
    const failed = (why: string): void => {
      e.dialing.delete(addr)
      e.candidates.failed(addr, Date.now())
      this.#log.debug({ peer: addr, why }, 'could not connect')
      socket.destroy()
    }
    socket.setTimeout(DIAL_TIMEOUT_MS, () => { failed('timeout') })
    socket.once('error', (err) => { failed(err.message) })
    socket.once('connect', () => {
      socket.setTimeout(0)
      const handshaken = handshakeDeadline(this.#handshakeMs, () => { conn?.destroy('no handshake') })
      socket.removeAllListeners('error')
      conn = new PeerConn(socket, addr, e.candidates.get(addr)?.source ?? 'manual', (c, hs) => {
        e.dialing.delete(addr)
        handshaken()
        if (!hs.infoHash.equals(Buffer.from(h.infoHash, 'hex'))) { c.destroy('handshake for another torrent'); return }
        if (hs.peerId.equals(this.#peerId)) { h.banned.add(addr); this.#log.debug({ peer: addr }, 'connected to ourselves; not dialled again'); c.destroy('connected to ourselves'); return }
        if (!h.canAccept(hs.peerId, addr, true)) {
          // a banned peer id or host, a pair already connected: not worth a dial every second
          const cand = e.candidates.get(addr)
          if (cand !== undefined) cand.nextAt = Date.now() + 300_000
          c.destroy('not accepted')
          return
        }
        e.candidates.reached(addr)
        h.attach(c)
      })
      socket.once('close', () => { handshaken(); if (e.dialing.delete(addr)) failed('closed before the handshake') })
      conn.sendHandshake(Buffer.from(h.infoHash, 'hex'), this.#peerId)
    })
  }

  /** A connection the torrent port accepted (paused: nothing read yet). */
  accept (accepted: Socket): void {
    if (this.#closed) { accepted.destroy(); return }
    let conn: PeerConn | undefined
    const socket = adopt(accepted, () => conn)
    this.#incoming.add(socket)
    socket.once('close', () => { this.#incoming.delete(socket) })
    const handshaken = this.#pending.admit(socket)
    const key = joinHostPort(canonicalHost(socket.remoteAddress ?? '?'), socket.remotePort ?? 0)
    conn = new PeerConn(socket, key, 'incoming', (c: PeerConn, hs: Handshake) => {
      handshaken()
      const e = this.#target(hs.infoHash.toString('hex'))
      if (e !== undefined && hs.peerId.equals(this.#peerId)) {
        // Our own dial, through an address that is none of our interfaces (hairpin NAT, another
        // loopback address). Answer before closing: the dialling side then sees its own peer id
        // and bans the address, where a bare close would be retried with backoff for as long as
        // the torrent runs.
        c.sendHandshake(hs.infoHash, this.#peerId)
        socket.end()
        socket.once('close', handshakeDeadline(this.#handshakeMs, () => { socket.destroy() }))
        return
      }
      if (e === undefined || !e.handle.canAccept(hs.peerId, key, false)) { c.destroy('unknown torrent or not accepted'); return }
      c.sendHandshake(hs.infoHash, this.#peerId)
      e.handle.attach(c)
    })
  }
}
