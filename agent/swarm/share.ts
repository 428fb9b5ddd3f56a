import { createHash } from 'node:crypto'

/**
 * Which pieces this agent takes from the origin when several imgdist agents download at once.
 * Every agent ranks the same set of ids (its own and those of the agents it is connected to
 * that are still downloading) by rendezvous hashing: piece i belongs to the id with the highest
 * score(id, i). The origin's upload is thus split between the agents without any message beyond
 * standard BitTorrent, and when an agent joins, leaves or finishes only its own pieces move.
 * Agents that see different sets (a peer not yet connected) overlap a little; that costs
 * duplicate origin bytes, never correctness, and the sets converge as the mesh forms.
 */
export function shareOf (ownId: Uint8Array, downloadingPeerIds: Uint8Array[]): (index: number) => boolean {
  const key = (id: Uint8Array): number => createHash('sha1').update(id).digest().readUInt32BE(0)
  const own = key(ownId)
  const others = [...new Set(downloadingPeerIds.map(key))].filter((k) => k !== own)
  if (others.length === 0) return () => true
  return (index) => {
    const mine = score(own, index)
    for (const k of others) if (score(k, index) > mine) return false
    return true
  }
}

/** This agent's own ranking of pieces, for choosing which piece of another share to steal (piece-picker.ts). */
export function stealScoreOf (ownId: Uint8Array): (index: number) => number {
  const own = createHash('sha1').update(ownId).digest().readUInt32BE(0)
  return (index) => score(own, index)
}

/** a 32-bit mix (murmur3's finaliser) of id key and piece index */
function score (idKey: number, index: number): number {
  let h = (idKey ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
