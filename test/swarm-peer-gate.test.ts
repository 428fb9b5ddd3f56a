import t from 'tap'
import type { PeerConn } from '../swarm/peer-conn.js'
import { HOST_BAN_AFTER, IDLE_EVICT_MS, MAX_BANS, PeerGate, TURNOVER_MS } from '../swarm/peer-gate.js'
import type { PendingPiece } from '../swarm/piece-picker.js'

// Which connections a torrent takes, as a unit: the peers are plain objects with the fields the
// gate reads (the same rules run against real peers in agent-adversarial.test.ts and swarm-bans.test.ts).

interface FakePeer {
  key: string, peerId: Buffer, incoming: boolean, closed: string | undefined, destroy: (why: string) => void
  listenPort?: number, up: { total: number }, amInterested: boolean, peerInterested: boolean
}
function peer (key: string, id: string, incoming = false): FakePeer {
  const p: FakePeer = { key, peerId: Buffer.alloc(20, id), incoming, closed: undefined, destroy: (why) => { p.closed = why }, up: { total: 0 }, amInterested: false, peerInterested: false }
  return p
}
const asConns = (ps: FakePeer[]): Set<PeerConn> => new Set(ps as unknown as PeerConn[])
const conn = (p: FakePeer): PeerConn => p as unknown as PeerConn

const BLOCK = 16384
/** A 4-block piece as the picker hands it over complete, its blocks from `senders` (one per block) with `data` (one byte value per block). */
function piece (index: number, senders: FakePeer[], data: number[], gate: PeerGate): PendingPiece {
  const p: PendingPiece = { index, length: 4 * BLOCK, blocks: 4, buf: Buffer.alloc(4 * BLOCK), state: new Uint8Array(4).fill(2), reqCount: new Uint8Array(4), received: 4, from: new Set() }
  senders.forEach((s, b) => {
    (p.buf as Buffer).fill(data[b] as number, b * BLOCK, (b + 1) * BLOCK)
    p.from.add(s.key)
    gate.sentBlock(p, b, conn(s))
  })
  return p
}

t.test('a sole sender of a bad piece is banned at once, by address and by peer id', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  const bad = peer('10.0.0.2:6881', 'bad')
  t.same(gate.failed(piece(0, [bad, bad, bad, bad], [9, 9, 9, 9], gate), asConns([bad])), [bad.key])
  t.match(bad.closed, /banned/, 'its connection is closed')
  t.equal(gate.canAccept(asConns([]), bad.peerId, '10.0.0.9:7000', true), false, 'the same client from another address is refused')
  t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'other'), bad.key, true), false, 'the address is refused')
  t.same(gate.failed(piece(1, [bad, bad, bad, bad], [9, 9, 9, 9], gate), asConns([])), [], 'banned once')
  const web = { from: new Set(['https://seed/x']), index: 2, length: 4, blocks: 1, buf: Buffer.alloc(4), state: new Uint8Array(1), reqCount: new Uint8Array(1), received: 1 }
  t.same(gate.failed(web, asConns([])), ['https://seed/x'], 'a web seed, always a sole sender, too')
})

t.test('co-senders of a bad piece are not banned for it; when a copy passes, only the sender of differing blocks is', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  const honest = peer('10.0.0.2:6881', 'h')
  const bad = peer('10.0.0.3:6881', 'b')
  const peers = asConns([honest, bad])
  // The honest peer's blocks hold 1, the bad one's garbage 0x55 (the good piece is all 1s).
  t.same(gate.failed(piece(5, [honest, bad, honest, bad], [1, 0x55, 1, 0x55], gate), peers), [], 'one failure: nobody')
  t.same(gate.failed(piece(5, [bad, honest, bad, honest], [0x55, 1, 0x55, 1], gate), peers), [], 'a second with the same two: still nobody')
  t.same(gate.failed(piece(6, [honest, bad, honest, bad], [1, 0x55, 1, 0x55], gate), peers), [], 'nor a third, on another piece')
  t.equal(honest.closed, undefined)
  t.equal(bad.closed, undefined)
  t.same(gate.passed(piece(5, [honest, honest, honest, honest], [1, 1, 1, 1], gate), peers), [bad.key], 'the copy that passed shows who sent other bytes')
  t.match(bad.closed, /banned/)
  t.equal(honest.closed, undefined, 'the honest co-sender stays')
  t.equal(gate.canAccept(asConns([]), honest.peerId, honest.key, true), true, 'and is welcome')
  t.same(gate.passed(piece(7, [honest, honest, honest, honest], [1, 1, 1, 1], gate), peers), [], 'a piece that never failed bans nobody')
})

t.test('a banned incoming peer does not come back under a fresh id and port for ever: its host is refused after a few bans', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  const neighbour = '10.0.0.7:6881' // an honest peer behind the same address (NAT), dialled by us
  for (let k = 0; k < HOST_BAN_AFTER; k++) {
    const id = Buffer.alloc(20, `bad${k}`)
    t.equal(gate.canAccept(asConns([]), id, `10.0.0.7:${40000 + k}`, false), true, `round ${k}: a new id from a new source port is let in`)
    const bad = peer(`10.0.0.7:${40000 + k}`, `bad${k}`, true)
    if (k === 0) bad.listenPort = 6999
    t.same(gate.failed(piece(k, [bad, bad, bad, bad], [9, 9, 9, 9], gate), asConns([bad])), [bad.key])
    if (k < HOST_BAN_AFTER - 1) t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'n'), neighbour, true), true, 'the host is not refused at once')
  }
  t.equal(gate.isBanned('10.0.0.7:6999'), true, 'the listening port its extended handshake gave is banned (the swarm does not dial it)')
  t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'fresh'), '10.0.0.7:45000', false), false, 'then the host is refused, whatever id and port')
  t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'n'), neighbour, true), false, 'dialled or not')
  t.equal(gate.canAccept(asConns([]), Buffer.alloc(20, 'o'), '10.0.0.8:45000', false), true, 'other hosts are not')
})

t.test('the ban lists are bounded: the oldest entries go', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 10)
  for (let k = 0; k < MAX_BANS + 10; k++) {
    const host = `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`
    const bad = peer(`${host}:6881`, 'x')
    bad.peerId = Buffer.from(k.toString(16).padStart(40, '0'), 'hex')
    gate.failed(piece(k, [bad, bad, bad, bad], [9, 9, 9, 9], gate), asConns([]))
  }
  t.ok(gate.banned.size <= MAX_BANS, `${gate.banned.size} addresses kept`)
  t.equal(gate.banned.has('10.0.0.0:6881'), false, 'the oldest went')
  t.equal(gate.banned.has(`10.0.3.${(MAX_BANS + 9) & 255}:6881`), true, 'the newest is kept')
  gate.banned.add('127.0.0.1:1') // as the swarm adds our own addresses
  t.ok(gate.banned.size <= MAX_BANS)
})

t.test('at the limit, a newcomer takes the slot of a peer idle for long, never of an active one', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 3)
  const t0 = 1_000_000
  const idle = peer('10.0.0.2:6881', 'i', true)
  const busy = peer('10.0.0.3:6881', 'b')
  const uploading = peer('10.0.0.4:6881', 'u', true)
  for (const p of [idle, busy, uploading]) gate.joined(conn(p), t0)
  const peers = asConns([idle, busy, uploading])
  const newcomer = Buffer.alloc(20, 'n')
  t.equal(gate.canAccept(peers, newcomer, '10.0.0.9:1', false, t0 + 1000), false, 'nobody idle for long yet: refused')
  gate.delivered(conn(busy), t0 + IDLE_EVICT_MS - 1000)
  uploading.up.total += 16384
  gate.tick(peers, t0 + IDLE_EVICT_MS - 1000)
  t.equal(idle.closed, undefined, 'the turnover waits too')
  t.equal(gate.canAccept(peers, newcomer, '10.0.0.9:1', false, t0 + IDLE_EVICT_MS + 1000), true, 'the newcomer is let in')
  t.match(idle.closed, /idle/, 'in place of the idle peer')
  t.equal(busy.closed, undefined, 'not the one that sent blocks')
  t.equal(uploading.closed, undefined, 'nor the one we upload to')
})

t.test('at the limit, the longest idle peer goes now and then without a newcomer, so that the swarm may dial', async (t) => {
  const gate = new PeerGate(Buffer.alloc(20, 'us'), 2)
  const t0 = 1_000_000
  const a = peer('10.0.0.2:6881', 'a', true)
  const b = peer('10.0.0.3:6881', 'b', true)
  gate.joined(conn(a), t0)
  gate.joined(conn(b), t0 + 500)
  const later = t0 + IDLE_EVICT_MS + 1000
  gate.tick(asConns([a]), later)
  t.equal(a.closed, undefined, 'below the limit: nobody')
  gate.tick(asConns([a, b]), later)
  t.match(a.closed, /idle/, 'at the limit: the longest idle')
  gate.tick(asConns([a, b]), later + 1000)
  t.equal(b.closed, undefined, `one per ${TURNOVER_MS} ms`)
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
