import { pino } from 'pino'
import t from 'tap'
import { BLOCK_LENGTH, setBit } from '../lib/peer-wire.js'
import { EgressBudget, SEEDS_TTL_MS, STALLED_MS, type BudgetPeer } from '../swarm/egress-budget.js'

// The origin's egress budget rules (swarm/egress-budget.ts), on plain objects; the engine over
// TCP is in swarm-fast-extension.test.ts.

const PIECE = 64 * 1024
const PIECES = 4
const F = PIECE * PIECES

function peer (pieces: number[], o: { lastHaveAt?: number, up?: number } = {}): BudgetPeer & { up: { total: number }, haveCount: number, lastHaveAt: number } {
  const bits = new Uint8Array(1)
  for (const i of pieces) setBit(bits, i)
  return { bits, haveCount: pieces.length, lastHaveAt: o.lastHaveAt ?? 0, up: { total: o.up ?? 0 } }
}

function sendAll (b: EgressBudget): void {
  for (let i = 0; i < PIECES; i++) for (let off = 0; off < PIECE; off += BLOCK_LENGTH) b.record({ index: i, begin: off, length: BLOCK_LENGTH })
}

const block = (index: number, begin = 0): { index: number, begin: number, length: number } => ({ index, begin, length: BLOCK_LENGTH })

t.test('first copies are always sent; a second only within the budget, or when nobody else holds the piece', async (t) => {
  const now = 1000
  const b = new EgressBudget(F, PIECE, 1)
  const asker = peer([], { lastHaveAt: now })
  const holder = peer([0, 1, 2, 3], { lastHaveAt: now })
  t.ok(b.allows(asker, block(0), [asker, holder], now), 'a block never sent')
  sendAll(b)
  t.equal(b.sent, F)
  t.notOk(b.allows(asker, block(0), [asker, holder], now), 'the second copy of a block another peer holds, over the budget')
  t.ok(b.allows(asker, block(0), [asker], now), 'but not when no other connected peer holds it')

  const roomy = new EgressBudget(F, PIECE, 1.5)
  sendAll(roomy)
  let sent = 0
  while (roomy.allows(asker, block(sent % PIECES), [asker, holder], now)) { roomy.record(block(sent % PIECES)); sent++ }
  t.equal(roomy.sent, 1.5 * F, 'a budget of 1.5 lets half a copy of duplicates through')
  t.equal(sent, F / 2 / BLOCK_LENGTH)
})

t.test('the first copies are reserved: duplicates early cannot leave pieces unsent', async (t) => {
  const now = 1000
  const b = new EgressBudget(F, PIECE, 1.25)
  const asker = peer([], { lastHaveAt: now })
  const holder = peer([0], { lastHaveAt: now })
  for (let k = 0; k < PIECE / BLOCK_LENGTH; k++) b.record(block(0, k * BLOCK_LENGTH)) // piece 0 sent once
  let dups = 0
  while (b.allows(asker, block(0), [asker, holder], now)) { b.record(block(0)); dups++ }
  t.equal(dups, F / 4 / BLOCK_LENGTH, 'duplicates stop at the budget less the bytes never sent')
  t.ok(b.allows(asker, block(3), [asker, holder], now), 'and the pieces never sent still go out')
})

t.test('a stalled peer is served until others feed it', async (t) => {
  const b = new EgressBudget(F, PIECE, 1)
  sendAll(b)
  const holder = peer([0, 1, 2, 3], { lastHaveAt: 0 })
  const asker = peer([1], { lastHaveAt: 0 })
  t.notOk(b.allows(asker, block(0), [asker, holder], STALLED_MS), 'not yet stalled')
  t.ok(b.allows(asker, block(0), [asker, holder], STALLED_MS + 1), 'no new piece for STALLED_MS: served')
  // It gets a piece from us: still exempt, as nothing came from elsewhere.
  asker.up.total += PIECE
  asker.haveCount++
  asker.lastHaveAt = STALLED_MS + 100
  t.ok(b.allows(asker, block(2), [asker, holder], STALLED_MS + 100), 'what it gains comes from us: still served (a site that reaches no other peer)')
  // Then others feed it: two pieces from elsewhere against one from us.
  asker.haveCount += 2
  t.notOk(b.allows(asker, block(2), [asker, holder], STALLED_MS + 200), 'once others feed it, the budget holds again')
  t.notOk(b.allows(asker, block(2), [asker, holder], STALLED_MS + 300), 'and stays so while it gains pieces')
})

t.test('a request spanning blocks is a first copy while any of its blocks is', async (t) => {
  const b = new EgressBudget(F, PIECE, 1)
  const asker = peer([], { lastHaveAt: 1000 })
  const holder = peer([0, 1, 2, 3], { lastHaveAt: 1000 })
  sendAll(b)
  const fresh = new EgressBudget(F, PIECE, 1)
  fresh.record(block(2))
  t.ok(fresh.allows(asker, { index: 2, begin: 0, length: 2 * BLOCK_LENGTH }, [asker, holder], 1000), 'its second block was never sent')
  t.notOk(b.allows(asker, { index: 2, begin: 0, length: 2 * BLOCK_LENGTH }, [asker, holder], 1000), 'both sent: a duplicate')
})

t.test('the first refusal is logged, once', async (t) => {
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const b = new EgressBudget(F, PIECE, 1, { log })
  sendAll(b)
  const asker = peer([], { lastHaveAt: 1000 })
  const holder = peer([0, 1, 2, 3], { lastHaveAt: 1000 })
  t.notOk(b.allows(asker, block(0), [asker, holder], 1000))
  t.notOk(b.allows(asker, block(1), [asker, holder], 1000))
  t.equal(b.refused, 2)
  t.equal(lines.length, 1, 'one line for the two refusals')
  t.match(JSON.parse(lines[0] ?? '{}'), { level: 30, msg: /^egress budget reached/, copies: 1, sent: F })
})

t.test("a seed the origin's tracker knows holds every piece, connected or not", async (t) => {
  let seeds = 0
  let asked = 0
  const b = new EgressBudget(F, PIECE, 1, { seedsElsewhere: () => { asked++; return seeds } })
  sendAll(b)
  const asker = peer([], { lastHaveAt: 1000 })
  t.ok(b.allows(asker, block(0), [asker], 1000), 'no other holder, connected or known: served')
  seeds = 1
  t.ok(b.allows(asker, block(0), [asker], 1000 + SEEDS_TTL_MS), 'the count is asked again only after SEEDS_TTL_MS')
  t.notOk(b.allows(asker, block(0), [asker], 1001 + SEEDS_TTL_MS), 'then a seed elsewhere (a site that finished and left) takes the second copy')
  t.equal(asked, 2, 'the tracker was asked twice')
  t.equal(b.refused, 1, 'and the refusal counted')
  t.ok(b.allows(asker, block(0), [asker], 1001 + SEEDS_TTL_MS + STALLED_MS), 'a stalled peer is served even so (it may not reach that seed)')
})
