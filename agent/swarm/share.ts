import { createHash } from 'node:crypto'

/**
 * Which pieces this agent takes from the origin when several imgdist agents download at once.
 * Every agent sorts the same set of ids (its own and those of the agents it is connected to
 * that are still downloading) and takes the pieces whose index falls on its rank, so the
 * origin's upload is split between them without any message beyond standard BitTorrent.
 * Agents that see different sets (a peer not yet connected) overlap a little; that costs only
 * duplicate origin bytes, never correctness, and the sets converge as the mesh forms.
 * The ids are hashed first so that the order does not favour a client version or a port.
 */
export function shareOf (ownId: Uint8Array, downloadingPeerIds: Uint8Array[]): (index: number) => boolean {
  const key = (id: Uint8Array): string => createHash('sha1').update(id).digest('hex')
  const own = key(ownId)
  const all = [...new Set([own, ...downloadingPeerIds.map(key)])].sort()
  const n = all.length
  const rank = all.indexOf(own)
  if (n <= 1) return () => true
  return (index) => index % n === rank
}
