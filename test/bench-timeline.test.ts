import t from 'tap'
import { swarmTimeline, type TraceLine } from '../bench/trace-timeline.js'

// A made-up run: origin 10.0.0.1, agents h1 and h2, three pieces; t = 1000 ms is the first request.
const O = '10.0.0.1:6881'
const lines: TraceLine[] = [
  { agent: 'h1', time: 1000, msg: 'requested' },
  { agent: 'h2', time: 1010, msg: 'requested' },
  { agent: 'h1', time: 1500, msg: 'piece verified', piece: 0, from: [O] },
  { agent: 'h2', time: 1600, msg: 'piece verified', piece: 1, from: ['::ffff:10.0.0.1:40000'] }, // the origin dialled h2
  { agent: 'h2', time: 1700, msg: 'piece verified', piece: 0, from: ['10.0.0.2:6881'] },
  { agent: 'h1', time: 2600, msg: 'piece verified', piece: 1, from: ['::ffff:10.0.0.3:1234'] },
  { agent: 'h1', time: 3000, msg: 'piece verified', piece: 2, from: [O] }, // last unique
  { agent: 'h2', time: 3200, msg: 'piece verified', piece: 2, from: ['10.0.0.2:6881', O] }, // origin again
  { agent: 'h1', time: 3300, msg: 'peer choke state' }
]

t.test('the origin phase, the tail and what was missing, from trace lines', async (t) => {
  const tl = swarmTimeline(lines, '10.0.0.1')
  t.equal(tl.agents, 2)
  t.equal(tl.pieces, 3)
  t.equal(tl.firstOriginPiece, 0.5, 'seconds from the first request anywhere')
  t.equal(tl.lastUniqueOriginPiece, 2)
  t.same(tl.lastPiece, { h1: 2, h2: 2.2 })
  t.equal(Number(tl.tail.toFixed(3)), 0.2)
  t.equal(tl.missingAtUniqueEnd, 1, 'h2 lacked piece 2 when h1 had it')
  t.equal(tl.missingSecondBefore, 3, 'at 1 s: h1 had piece 0; h2 had piece 1 and 0 at 0.6 and 0.7 s')
  t.equal(tl.originDeliveries, 4, 'the origin counted on the connection it dialled too (piece 1 at h2)')
  t.same(tl.originPiecesPerSecond, [2, 0, 1], 'pieces 0 and 1 in the first second, piece 1 by the dialled connection')
})

t.test('says what is wrong with a run it cannot read', async (t) => {
  t.throws(() => swarmTimeline([{ agent: 'h1', time: 1, msg: 'requested' }], '10.0.0.1'), /trace level/)
  t.throws(() => swarmTimeline(lines, '10.9.9.9'), /no piece came from the origin 10\.9\.9\.9/)
})
