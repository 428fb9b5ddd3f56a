import { createHash } from 'node:crypto'
import { hasBit } from '../lib/peer-wire.js'

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

/** Every piece's owner (as ownerOf), worked out once for a set of agents; `own` is our key. */
export function ownersOf (ownId: Uint8Array, downloadingPeerIds: Uint8Array[], count: number): { own: number, owners: Uint32Array } {
  const owner = ownerOf(ownId, downloadingPeerIds)
  const owners = new Uint32Array(count)
  for (let i = 0; i < count; i++) owners[i] = owner(i)
  return { own: idKey(ownId), owners }
}

/**
 * Which pieces of other shares are ours to steal (piece-picker.ts): the agents out of pieces of
 * their own share (at most `keep` missing by their bitfields, and we, who ask) split the
 * candidates by the same rendezvous hashing as the shares. Thieves that see the same agents
 * thus never take the same piece; a thief that counts differently overlaps a little.
 */
export function stealerOf (ownId: Uint8Array, agents: Array<{ id: Uint8Array, bits: Uint8Array }>, owners: Uint32Array, keep: number): (index: number) => boolean {
  return shareOf(ownId, thievesOf(agents, owners, keep).map((a) => a.id))
}

/** The agents with at most `keep` pieces of their own share missing, by their bitfields. */
export function thievesOf<A extends { id: Uint8Array, bits: Uint8Array }> (agents: A[], owners: Uint32Array, keep: number): A[] {
  return agents.filter((a) => {
    const key = idKey(a.id)
    let left = 0
    for (let i = 0; i < owners.length; i++) if (owners[i] === key && !hasBit(a.bits, i)) left++
    return left <= keep
  })
}

/**
 * Which of the equally rare pieces a peer offers are ours to ask it for (piece-picker.ts
 * `spread`): piece i goes, by the same rendezvous hashing as the shares, to one of the
 * downloading agents that lack it (we, who ask, lack it). Agents that all need the pieces only
 * one agent holds thus ask that holder for different pieces and pass them on to each other,
 * instead of all taking the same piece from it at once.
 */
export function spreadOf (ownId: Uint8Array, agents: Array<{ id: Uint8Array, bits: Uint8Array }>): (index: number) => boolean {
  const own = idKey(ownId)
  const others = agents.map((a) => ({ key: idKey(a.id), bits: a.bits })).filter((a) => a.key !== own)
  if (others.length === 0) return () => true
  return (index) => {
    const mine = score(own, index)
    for (const a of others) if (!hasBit(a.bits, index) && score(a.key, index) > mine) return false
    return true
  }
}

/** Peer ids are Buffers that live as long as their connection: their keys are worked out once. */
const keys = new WeakMap<Uint8Array, number>()
function idKey (id: Uint8Array): number {
  let k = keys.get(id)
  if (k === undefined) { k = createHash('sha1').update(id).digest().readUInt32BE(0); keys.set(id, k) }
  return k
}

/** a 32-bit mix (murmur3's finaliser) of id key and piece index */
function score (idKey: number, index: number): number {
  let h = (idKey ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
