import t from 'tap'
import type { PeerConn } from '../swarm/peer-conn.js'
import { PeerGate } from '../swarm/peer-gate.js'

// Which connections a torrent takes, as a unit: the peers are plain objects with the fields the
// gate reads (the same rules run against real peers in agent-adversarial.test.ts).

interface FakePeer { key: string, peerId: Buffer, incoming: boolean, closed: string | undefined, destroy: (why: string) => void }
function peer (key: string, id: string, incoming = false): FakePeer {
  const p: FakePeer = { key, peerId: Buffer.alloc(20, id), incoming, closed: undefined, destroy: (why) => { p.closed = why } }
  return p
}
const asConns = (ps: FakePeer[]): Set<PeerConn> => new Set(ps as unknown as PeerConn[])

t.test('a sole sender of a bad piece is banned at once, by address and by peer id', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  const bad = peer('10.0.0.2:6881', 'bad')
  t.same(gate.blame(new Set([bad.key]), asConns([bad])), [bad.key])
  t.match(bad.closed, /banned/, 'its connection is closed')
  t.equal(gate.canAccept(asConns([]), bad.peerId, '10.0.0.9:7000', true), false, 'the same client from another address is refused')
  t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'other'), bad.key, true), false, 'the address is refused')
  t.same(gate.blame(new Set([bad.key]), asConns([])), [], 'banned once')
})

t.test('a co-sender is banned at its second strike, not its first', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  const a = peer('10.0.0.2:6881', 'a')
  const b = peer('10.0.0.3:6881', 'b')
  t.same(gate.blame(new Set([a.key, b.key]), asConns([a, b])), [], 'one bad piece from two senders: nobody yet')
  t.equal(a.closed, undefined)
  t.same(gate.blame(new Set([a.key, 'https://seed/x']), asConns([a, b])), [a.key], 'a second bad piece with a: a is banned')
  t.equal(b.closed, undefined, 'b, a sender once, stays')
})

t.test('connection limit, and one connection per pair of peers: the one the smaller id opened', async (t) => {
  const small = Buffer.alloc(20, 'a')
  const big = Buffer.alloc(20, 'z')
  const full = new PeerGate(small, 1)
  t.equal(full.canAccept(asConns([peer('x:1', 'x')]), big, 'y:1', false), false, 'at the limit')
  // We (small id) dialled them, and their dial to us arrives: ours is kept.
  const gate = new PeerGate(small, 10)
  const ours = peer('z:1', 'z', false)
  t.equal(gate.canAccept(asConns([ours]), big, 'z:2', false), false, 'their incoming connection is refused')
  t.equal(ours.closed, undefined)
  // They (big id) dialled us and we dialled them too: theirs is dropped for ours... from their side.
  const theirGate = new PeerGate(big, 10)
  const theirs = peer('a:1', 'a', false) // their outgoing connection to us
  t.equal(theirGate.canAccept(asConns([theirs]), small, 'a:2', false), true, 'our incoming connection (opened by the smaller id) is kept')
  t.match(theirs.closed, /duplicate/, 'and their own dial is closed')
})
