import type { PexPeer } from '../lib/peer-extension.js'

/**
 * Peer exchange (BEP 11), the receiving side's limits: how much of one connection's gossip is
 * taken. BEP 11 allows one ut_pex a minute; until session 21 every message was taken, and twenty
 * sent at once filled the 1000-address candidate table (candidates.ts).
 *
 * - One message per PEX_INTAKE_INTERVAL_MS per connection; extras are ignored, not punished
 *   (libtorrent drops such a peer, but its other traffic may still be worth having). The
 *   interval is a little under a minute: a sender's once-a-minute timer, plus network delay,
 *   may bring two honest messages a little closer than 60 s, and what an ignored message said is
 *   not repeated (a sender tells each address once).
 * - At most PEX_MAX_TAKEN_PER_CONN addresses over a connection's life.
 */

export const PEX_INTAKE_INTERVAL_MS = 50_000
export const PEX_MAX_TAKEN_PER_CONN = 200

const taken = new WeakMap<object, { at: number, count: number }>()

/** The addresses of one ut_pex from `conn` to take: all of them, some, or none. */
export function takePex<T extends PexPeer> (conn: object, added: readonly T[], now: number): T[] {
  const last = taken.get(conn)
  if (last !== undefined && now - last.at < PEX_INTAKE_INTERVAL_MS) return []
  const count = last?.count ?? 0
  const out = added.slice(0, Math.max(0, PEX_MAX_TAKEN_PER_CONN - count))
  taken.set(conn, { at: now, count: count + out.length })
  return out
}
