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
  const own = idKey(ownId)
  const owner = ownerOf(ownId, downloadingPeerIds)
  return (index) => owner(index) === own
}

/** The owner of each piece, as a number that tells the agents apart (for stealing, piece-picker.ts). */
export function ownerOf (ownId: Uint8Array, downloadingPeerIds: Uint8Array[]): (index: number) => number {
  const keys = [...new Set([ownId, ...downloadingPeerIds].map(idKey))]
  if (keys.length === 1) return () => keys[0] as number
  return (index) => {
    let best = keys[0] as number
    let bestScore = score(best, index)
    for (const k of keys) {
      const s = score(k, index)
      if (s > bestScore) { best = k; bestScore = s }
    }
    return best
  }
}

function idKey (id: Uint8Array): number { return createHash('sha1').update(id).digest().readUInt32BE(0) }

/** This agent's own ranking of pieces, for choosing which piece of another share to steal (piece-picker.ts). */
export function stealScoreOf (ownId: Uint8Array): (index: number) => number {
  const own = idKey(ownId)
  return (index) => score(own, index)
}

/** a 32-bit mix (murmur3's finaliser) of id key and piece index */
function score (idKey: number, index: number): number {
  let h = (idKey ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
