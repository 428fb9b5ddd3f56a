import t from 'tap'
import { kumarRossBound } from '../bench/kumar-ross.js'

const MiB = 1024 * 1024
const Mbit = 1e6

t.test('seed-limited: 8 hosts, 128 MiB, all 100 Mbit/s (the issue table: 10.7 s)', async (t) => {
  const b = kumarRossBound({ fileBytes: 128 * MiB, seedUpBps: 100 * Mbit, peerUpBps: Array(7).fill(100 * Mbit) })
  t.equal(b.seconds.toFixed(2), '10.74')
  t.equal(b.seedTerm, b.seconds)
  t.equal(b.swarmTerm.toFixed(2), '9.40')
  t.equal(b.downlinkTerm, 0, 'uncapped downlinks give no term')
  t.equal(b.centralSeconds.toFixed(2), '75.16')
})

t.test('swarm-limited: seed 200, peers 50 Mbit/s (the issue table: 13.7 s)', async (t) => {
  const b = kumarRossBound({ fileBytes: 128 * MiB, seedUpBps: 200 * Mbit, peerUpBps: Array(7).fill(50 * Mbit) })
  t.equal(b.seconds.toFixed(2), '13.67')
  t.equal(b.swarmTerm, b.seconds)
})

t.test('downlink-limited: the slowest downlink sets the bound', async (t) => {
  const b = kumarRossBound({ fileBytes: 100 * MiB, seedUpBps: 1000 * Mbit, peerUpBps: [1000 * Mbit, 1000 * Mbit], peerDownBps: [Infinity, 10 * Mbit] })
  t.equal(b.seconds, 100 * MiB * 8 / (10 * Mbit))
  t.equal(b.downlinkTerm, b.seconds)
})

t.test('refuses nonsense', async (t) => {
  t.throws(() => kumarRossBound({ fileBytes: 1, seedUpBps: 0, peerUpBps: [1] }), RangeError)
  t.throws(() => kumarRossBound({ fileBytes: 1, seedUpBps: 1, peerUpBps: [] }), RangeError)
  t.throws(() => kumarRossBound({ fileBytes: 1, seedUpBps: 1, peerUpBps: [-1] }), RangeError)
  t.throws(() => kumarRossBound({ fileBytes: 1, seedUpBps: 1, peerUpBps: [1], peerDownBps: [0] }), RangeError)
})
