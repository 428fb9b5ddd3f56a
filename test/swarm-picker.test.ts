import t from 'tap'
import { BLOCK_LENGTH, setBit } from '../lib/peer-wire.js'
import { PiecePicker, SPREAD_WINDOW, blockKey } from '../swarm/piece-picker.js'
import { ownersOf, shareOf, spreadOf, stealerOf } from '../swarm/share.js'

// The engine's piece picker and the share rule between agents, as units (no sockets).

t.test('picker: rarest first, ties to the lowest index, blocks of begun pieces first, then endgame', async (t) => {
  const p = new PiecePicker(4 * 32768, 32768) // 4 pieces of 2 blocks
  const all = new Uint8Array([0xf0])
  const some = new Uint8Array([0x30]) // pieces 2 and 3
  p.addPeerBits(all, 1, true)
  p.addPeerBits(some, 1, false)
  const seed = { bits: all, shareOnly: false, requested: new Set<number>() }
  const first = p.pick(seed, 2)
  t.same(first.map((r) => `${r.index}/${r.begin}`), ['0/0', `0/${BLOCK_LENGTH}`], 'pieces 0 and 1 are rarest; 0 first')
  for (const r of first) seed.requested.add(blockKey(r.index, r.begin))
  const leech = { bits: some, shareOnly: false, requested: new Set<number>() }
  t.same(p.pick(leech, 1).map((r) => r.index), [2], 'the leecher is asked for what it has')
  // Only the seed holds pieces 0 and 1: with the share rule, another agent's pieces are left to it.
  p.share = (i) => i >= 2
  p.stealKeep = 0
  const shareOnly = { bits: all, shareOnly: true, requested: seed.requested }
  const stolen = p.pick(shareOnly, 10)
  t.same(stolen.map((r) => r.index), [1, 1], 'share-only seed: nothing of our share is left (2 and 3 a leecher has), so piece 1 of another share is stolen')
  for (const r of stolen) seed.requested.add(blockKey(r.index, r.begin))
  t.same(p.pick(shareOnly, 10), [], 'one stolen piece at a time')
  p.share = () => true
  const rest = p.pick(seed, 3)
  t.same(rest.map((r) => r.index), [2, 3, 3], 'then the rest: the begun piece 2 first, then 3')
  for (const r of rest) seed.requested.add(blockKey(r.index, r.begin))
  // Everything is requested: endgame asks another holder of a block in flight.
  const endgame = p.pick(leech, 10)
  t.ok(endgame.length > 0 && endgame.every((r) => r.index === 2 || r.index === 3), 'endgame duplicates blocks in flight')
  // A block that comes back after its piece completed elsewhere is a duplicate, not an error.
  const b0 = Buffer.alloc(BLOCK_LENGTH)
  t.equal(p.receive(0, 0, b0, 'a'), undefined)
  const done = p.receive(0, BLOCK_LENGTH, b0, 'a')
  t.equal(typeof done, 'object', 'the second block completes piece 0')
  t.equal(p.receive(0, 0, b0, 'b'), 'dup')
  t.equal(p.receive(1, 5, b0, 'b'), 'bad', 'a block at a misaligned offset is refused')
})

t.test('stealing from a share-only seed: from the front, past what owners keep, thieves apart', async (t) => {
  const pieces = 64
  const all = new Uint8Array(pieces / 8).fill(0xff)
  const thief = (stealer: (i: number) => boolean = () => true): PiecePicker => {
    const p = new PiecePicker(pieces * 16384, 16384)
    p.addPeerBits(all, 1, true)
    p.share = (i) => i % 4 === 0 // our share: every fourth piece
    p.stealKeep = 2
    p.stealer = () => stealer
    return p
  }
  const origin = { bits: all, shareOnly: true, requested: new Set<number>() }
  const a = thief()
  t.same(a.pick(origin, 16).map((r) => r.index), Array.from({ length: 16 }, (_, k) => 4 * k), 'our own share first, lowest index first')
  for (let i = 0; i < pieces; i += 4) a.markHave(i)
  t.same(a.pick(origin, 16).map((r) => r.index), [6], 'then one piece of another share: the first past the owner\'s first 2 × stealKeep missing (1 2 3 5)')
  t.same(a.pick(origin, 16), [], 'one stolen piece at a time')
  const b = thief((i) => i % 2 === 1)
  for (let i = 0; i < pieces; i += 4) b.markHave(i)
  t.same(b.pick(origin, 16).map((r) => r.index), [7], 'only a piece the stealer designates to us')
  const c = thief()
  for (let i = 0; i < pieces; i += 4) c.markHave(i)
  const downloader = new Uint8Array(pieces / 8)
  setBit(downloader, 6)
  c.addPeerBits(downloader, 1, false)
  t.same(c.pick(origin, 16).map((r) => r.index), [7], 'a piece a downloader already has is left to the swarm, not stolen from the seed')
  const d = thief()
  d.owner = (i) => i % 4
  for (let i = 0; i < pieces; i++) if (![1, 5, 9, 13, 17, 2, 6, 10, 14, 3, 7].includes(i)) d.markHave(i)
  t.same(d.pick(origin, 16).map((r) => r.index), [17], 'each owner keeps its first 2 × stealKeep missing pieces; 17, the fifth of owner 1, is stolen')
  const e = thief()
  for (let i = 0; i < pieces; i++) if (![1, 5, 9, 13].includes(i)) e.markHave(i)
  t.same(e.pick(origin, 16), [], 'an owner with only 2 × stealKeep pieces left is not stolen from')
  // The owner's side of the same rule: while another agent steals, it takes only its kept pieces.
  const f = thief()
  f.othersSteal = () => true
  t.same(f.pick(origin, 16).map((r) => r.index), [0, 4], 'another agent steals: the owner begins only its first stealKeep pieces')
  f.markHave(0)
  t.same(f.pick(origin, 16).map((r) => r.index), [8], 'and the next one as the first is done')
  for (let i = 12; i < pieces; i += 4) f.markHave(i)
  f.markHave(4)
  t.same(f.pick(origin, 16).map((r) => r.index), [6], 'with only stealKeep pieces of its own missing, it is a thief itself')
})

t.test('a piece held by a finished agent is not fetched from the origin again while the origin is busy', async (t) => {
  const all = new Uint8Array([0xff])
  const p = new PiecePicker(8 * 16384, 16384)
  p.addPeerBits(all, 1, true) // the origin: a seed that is no agent
  const origin = { bits: all, shareOnly: true, requested: new Set<number>() }
  for (let i = 0; i < 6; i++) p.markHave(i)
  p.share = (i) => i !== 6 // piece 6 is another agent's share: the origin is sending it to that agent
  p.stealer = () => () => false
  const finished = new Uint8Array([0xfd]) // an agent that has all but piece 6 (finished, as far as this test goes: one of us)
  p.addPeerBits(finished, 1, false)
  t.same(p.pick(origin, 4), [], 'the origin is not asked for piece 7: it is busy with piece 6, which no agent holds yet')
  t.equal(p.seedIdle(), false)
  p.addHave(6) // the other agent has piece 6: every piece is out, the origin has upload to spare
  t.equal(p.seedIdle(), true)
  const spare = p.pick(origin, 4)
  t.same(spare.map((r) => r.index), [6, 7], 'now the origin is asked like any peer (rarest first, the lowest index of equals)')
  for (const r of spare) p.unrequest(r.index, r.begin)
  p.markHave(6)
  const agent = { bits: finished, shareOnly: false, requested: new Set<number>() }
  const asked = p.pick(agent, 1)
  t.same(asked.map((r) => r.index), [7], 'the finished agent is')
  for (const r of asked) agent.requested.add(blockKey(r.index, r.begin))
  p.addPeerBits(finished, -1, false)
  t.same(p.pick(origin, 4).map((r) => r.index), [], 'piece 7 is pending with the agent until its requests are returned')
  for (const r of asked) p.unrequest(r.index, r.begin)
  t.same(p.pick(origin, 4).map((r) => r.index), [7], 'once the agent is gone, the origin is asked')
})

t.test('stealer: thieves that see the same agents split the candidates without overlap', async (t) => {
  const id = (n: number): Buffer => Buffer.from(`-IM0100-agent${n}xxxxxx`)
  const count = 256
  const ids = [id(0), id(1), id(2)]
  const { owners } = ownersOf(ids[0] as Buffer, ids.slice(1), count)
  const bitsOf = (n: number, done: boolean): Uint8Array => {
    const { own } = ownersOf(ids[n] as Buffer, [], count)
    const bits = new Uint8Array(count / 8)
    for (let i = 0; i < count; i++) if (done ? owners[i] === own : false) setBit(bits, i)
    return bits
  }
  // agents 0 and 1 have their whole share; agent 2 has nothing yet: 0 and 1 are the thieves
  const agents = [0, 1, 2].map((n) => ({ id: ids[n] as Buffer, bits: bitsOf(n, n !== 2) }))
  const s0 = stealerOf(ids[0] as Buffer, agents.filter((_, n) => n !== 0), owners, 2)
  const s1 = stealerOf(ids[1] as Buffer, agents.filter((_, n) => n !== 1), owners, 2)
  const s2 = stealerOf(ids[2] as Buffer, agents.filter((_, n) => n !== 2), owners, 2)
  let zero = 0
  for (let i = 0; i < count; i++) {
    t.not(s0(i), s1(i), `piece ${i}: exactly one of the two thieves`)
    if (s0(i)) zero++
  }
  t.ok(zero > count / 4 && zero < (3 * count) / 4, `split about evenly (${zero} of ${count})`)
  t.ok(Array.from({ length: count }, (_, i) => i).some((i) => s2(i) && s0(i)), 'an agent that asks though its share is not done counts itself a thief')
})

t.test('share rule: every piece has exactly one owner, and a leaving agent moves only its own pieces', async (t) => {
  const ids = Array.from({ length: 7 }, (_, i) => Buffer.from(`-IM0100-agent${i}xxxxxx`))
  const owners = (set: Buffer[]): number[] => Array.from({ length: 512 }, (_, piece) => {
    const o = set.filter((id) => shareOf(id, set.filter((x) => x !== id))(piece))
    return o.length === 1 ? set.indexOf(o[0] as Buffer) : -1
  })
  const full = owners(ids)
  t.notOk(full.includes(-1), 'no piece without an owner or with two')
  const counts = ids.map((_, i) => full.filter((o) => o === i).length)
  t.ok(Math.min(...counts) > 40 && Math.max(...counts) < 110, `balanced: ${counts.join(' ')}`)
  const without6 = owners(ids.slice(0, 6))
  t.ok(full.every((o, piece) => o === 6 || without6[piece] === o), 'pieces of the others stay put')
  t.equal(shareOf(ids[0] as Buffer, [])(5), true, 'alone, every piece is ours')
})


t.test('spreading: agents that lack the same pieces of one holder ask it for different ones', async (t) => {
  const id = (n: number): Buffer => Buffer.from(`-IM0100-agent${n}xxxxxx`)
  const count = 64
  const holder = new Uint8Array(count / 8).fill(0xff)
  const ids = Array.from({ length: 6 }, (_, n) => id(n))
  // all six lack everything; each sees the other five as downloading agents
  const agents = ids.map((x) => ({ id: x, bits: new Uint8Array(count / 8) }))
  const firstPick = (n: number): number => {
    const p = new PiecePicker(count * 16384, 16384)
    p.addPeerBits(holder, 1, false)
    p.spread = () => spreadOf(ids[n] as Buffer, agents.filter((_, k) => k !== n))
    const r = p.pick({ bits: holder, shareOnly: false, requested: new Set<number>() }, 1)
    return (r[0] as { index: number }).index
  }
  const picks = ids.map((_, n) => firstPick(n))
  t.ok(picks.every((i) => i < SPREAD_WINDOW), `each takes one of the first ${SPREAD_WINDOW} (file order kept): ${picks.join(' ')}`)
  t.ok(new Set(picks).size >= 4, `mostly different pieces: ${picks.join(' ')}`)
  // Every piece is designated to exactly one of the agents that lack it.
  for (let i = 0; i < count; i++) {
    const mine = ids.filter((x, n) => spreadOf(x, agents.filter((_, k) => k !== n))(i))
    if (mine.length !== 1) t.fail(`piece ${i} designated to ${mine.length} agents`)
  }
  // An agent that has the piece drops out: it goes to one of those that still lack it.
  const has0 = agents.map((a, n) => n === 0 ? { id: a.id, bits: holder } : a)
  for (let i = 0; i < count; i++) {
    const mine = ids.slice(1).map((x, n) => spreadOf(x, has0.filter((_, k) => k !== n + 1))(i))
    if (mine.filter(Boolean).length !== 1) t.fail(`piece ${i}: not one designee among those lacking it`)
  }
  t.equal(spreadOf(ids[0] as Buffer, [])(3), true, 'alone, every piece is ours')
  // Rarity still comes first: a piece fewer peers hold wins over the designated ones.
  const p = new PiecePicker(count * 16384, 16384)
  p.addPeerBits(holder, 1, false)
  const other = new Uint8Array(count / 8).fill(0xff)
  other[5] = 0xfe // piece 47 (bit 7 of byte 5) only the holder has
  p.addPeerBits(other, 1, false)
  p.spread = () => () => false
  t.same(p.pick({ bits: holder, shareOnly: false, requested: new Set<number>() }, 1).map((r) => r.index), [47], 'the rarest piece, though not designated')
})

t.test('endgame begun in the same pick() never asks the same peer twice for a block', async (t) => {
  const p = new PiecePicker(4 * 65536, 65536) // 4 pieces of 4 blocks
  const peer = { bits: new Uint8Array([0xf0]), shareOnly: false, requested: new Set<number>() }
  // One batch larger than the torrent: it begins every piece, so endgame starts in the same call.
  const reqs = p.pick(peer, 32)
  const keys = reqs.map((r) => blockKey(r.index, r.begin))
  t.equal(reqs.length, 16, 'every block once')
  t.equal(new Set(keys).size, keys.length, 'no block twice in the batch')
  for (const k of keys) peer.requested.add(k)
  t.same(p.pick(peer, 32), [], 'nothing more from the peer that has it all in flight')
  // A second holder is asked in endgame for blocks in flight elsewhere, each once.
  const other = { bits: new Uint8Array([0xf0]), shareOnly: false, requested: new Set<number>() }
  const dup = p.pick(other, 32)
  t.equal(dup.length, 16, 'endgame asks the other holder for every block in flight')
  t.equal(new Set(dup.map((r) => blockKey(r.index, r.begin))).size, 16, 'each once')
})
