import type { Socket } from 'node:net'

/**
 * How long a connection may take to complete the BitTorrent handshake, and how many accepted
 * connections may be waiting for theirs at once.
 *
 * The deadline is absolute, from connect or accept. It was socket.setTimeout until session 21,
 * an idle timeout that every byte restarts: one byte every 4 s held a connection open without a
 * handshake for minutes, and nothing bounded how many did so, so a slow sender could take every
 * file descriptor.
 *
 * Past MAX_PENDING_HANDSHAKES (or maxConns, if more: when the event loop was busy, a fleet's
 * connections are accepted all at once, before any of their handshakes is read) the OLDEST waiting connection is closed to make room, not the new
 * one: an honest peer sends its handshake at once, so the oldest waiting is the likeliest to be
 * stalling. Refusing new ones instead would let 64 slow sockets, renewed every 10 s, shut out
 * every honest incoming peer; closing the oldest makes an attacker open connections faster than
 * an honest peer's handshake arrives. Outgoing dials are not counted here: maxConns bounds them.
 */

export const HANDSHAKE_TIMEOUT_MS = 10_000
export const MAX_PENDING_HANDSHAKES = 64

/** Calls `onExpire` after `ms` unless the returned function is called first. */
export function handshakeDeadline (ms: number, onExpire: () => void): () => void {
  const timer = setTimeout(onExpire, ms)
  timer.unref()
  return () => { clearTimeout(timer) }
}

/** Accepted connections that have not handshaken yet, oldest first. */
export class PendingHandshakes {
  readonly #waiting = new Map<Socket, () => void>()
  readonly #ms: number
  readonly #max: number

  constructor (ms = HANDSHAKE_TIMEOUT_MS, max = MAX_PENDING_HANDSHAKES) { this.#ms = ms; this.#max = max }

  get size (): number { return this.#waiting.size }

  /** Starts `socket`'s deadline (closing the oldest waiting one if full); returns what to call once its handshake arrived. */
  admit (socket: Socket): () => void {
    while (this.#waiting.size >= this.#max) {
      const oldest = this.#waiting.keys().next().value as Socket
      this.#release(oldest)
      oldest.destroy()
    }
    this.#waiting.set(socket, handshakeDeadline(this.#ms, () => { this.#release(socket); socket.destroy() }))
    socket.once('close', () => { this.#release(socket) })
    return () => { this.#release(socket) }
  }

  #release (socket: Socket): void {
    const clear = this.#waiting.get(socket)
    if (clear === undefined) return
    clear()
    this.#waiting.delete(socket)
  }
}
