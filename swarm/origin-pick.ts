import { hasBit } from '../lib/peer-wire.js'
import type { PiecePicker } from './piece-picker.js'

/**
 * Which piece to begin from a share-only seed (the origin): the picker's rules for sharing the
 * origin with the other agents (piece-picker.ts `share`, `owner`, `stealer`, `othersSteal`,
 * `stealKeep`; the session keeps them current, origin-share.ts).
 *
 * Owners work from the front of their share. Once at most `stealKeep` pieces of our own share
 * are missing, we may steal: take one piece at a time from another agent's share that no
 * downloader has yet, so that the origin stays busy while agents with bigger or later-started
 * shares catch up. A thief leaves each owner its first 2 × `stealKeep` missing pieces and takes
 * the first of the others that `stealer()` designates to it (the session splits the candidates
 * between the agents out of pieces of their own, so that two thieves rarely take the same piece).
 * Taking from the front keeps the origin's pieces in file order, so the sha512 of the prefix
 * keeps up (prefix-hasher.ts).
 */

/** pickOwn(): nothing of our share to begin, and at most `stealKeep` of it missing: we are a thief */
export const OUT_OF_SHARE = -2

/**
 * The next piece of our share to take from a seed holding `bits`: the lowest missing one that no
 * downloader has (all such pieces are equally rare), or -1. Counted the way thieves count an
 * owner's kept pieces (steal()), so that both sides agree where the owner's part ends. While
 * another agent steals, an owner takes only its first `stealKeep` missing pieces and leaves the
 * rest to the thieves.
 */
export function pickOwn (p: PiecePicker, bits: Uint8Array): number {
  let othersSteal: boolean | undefined
  let kept = 0
  for (let i = 0; i < p.count; i++) {
    if (hasBit(p.have, i) || !hasBit(bits, i) || !p.share(i) || !p.needsSeed(i)) continue
    if (++kept > p.stealKeep && (othersSteal ??= p.othersSteal())) return -1
    if (!p.pending.has(i)) return i
  }
  return kept > p.stealKeep ? -1 : OUT_OF_SHARE
}

/** A piece of another agent's share to take from a seed holding `bits`, or -1. */
export function steal (p: PiecePicker, bits: Uint8Array): number {
  const mine = p.stealer()
  const kept = new Map<number, number>()
  for (let i = 0; i < p.count; i++) {
    if (hasBit(p.have, i) || !hasBit(bits, i) || !p.needsSeed(i) || p.share(i)) continue
    const owner = p.owner(i)
    const k = kept.get(owner) ?? 0
    if (k < 2 * p.stealKeep) { kept.set(owner, k + 1); continue }
    if (!p.pending.has(i) && mine(i)) return i
  }
  return -1
}
