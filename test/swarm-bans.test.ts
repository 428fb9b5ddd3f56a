import { resolve } from 'node:path'
import t from 'tap'
import { encode } from '../lib/peer-wire.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { pieceMsg, rawPeer, sleep, type RawPeer } from './helpers/raw-peer.js'

// Bans and connection slots against real engines (dist/) and hand-driven peers on loopback: a
// peer sending garbage next to an honest seed, a banned peer coming back, idle peers holding every
// slot. The rules themselves, with fake peers and clocks, are in swarm-peer-gate.test.ts.

const gateConsts = async (): Promise<typeof import('../swarm/peer-gate.js')> => await import(resolve('dist/swarm/peer-gate.js')) as typeof import('../swarm/peer-gate.js')

/** a peer that answers every request with garbage, at once or once `until()` holds */
function garbage (p: RawPeer, until = (): boolean => true): void {
  const held: Array<{ index: number, begin: number, length: number }> = []
  const answer = (r: { index: number, begin: number, length: number }): void => { p.send(pieceMsg(r.index, r.begin, Buffer.alloc(r.length, 0x55))) }
  p.onRequest = (r) => { if (until()) answer(r); else held.push(r) }
  const flush = setInterval(() => {
    if (until()) { clearInterval(flush); for (const r of held.splice(0)) answer(r) }
  }, 20)
  void p.closed.then(() => { clearInterval(flush) })
}

t.test('a peer sending garbage blocks next to an honest seed is banned, the seed is not, and the download completes', async (t) => {
  // 1 MiB pieces: the picker splits a piece's 64 blocks between the two peers (begun pieces are
  // finished first), so most bad pieces have both as senders.
  const f = await engineFixture(t, 1024)
  const { file, tor } = await f.image('big.img', 1024 * 1024, 4)
  const { leecher, l, seedAddr, leechPort } = await f.seedAndLeecher(file, tor)

  const bad = await rawPeer(leechPort, tor.infoHash, { bits: new Uint8Array([0xf0]), unchoke: true })
  // The blocks first asked of it are answered once the seed is there too, so that the piece they
  // are in is completed by both.
  garbage(bad, () => l.numPeers >= 2)
  const badKey = `127.0.0.1:${bad.sock.localPort as number}`
  leecher.addPeer(tor.infoHash, seedAddr)
  const deadline = Date.now() + 60_000
  while (!l.complete && !l.banned.has(seedAddr) && Date.now() < deadline) await sleep(100)
  t.comment(`hash failures ${l.counters.hashFailures}, banned ${JSON.stringify(l.counters.bannedPeers)}, have ${l.picker.haveCount}/4`)
  t.notOk(l.banned.has(seedAddr), 'the honest seed is not banned')
  t.ok(l.complete, 'the download completes')
  t.ok(l.counters.hashFailures > 0, 'the garbage was caught by sha1')
  t.same(l.counters.bannedPeers, [badKey], 'the garbage sender is banned, nobody else')
  t.ok(bad.isClosed(), 'and disconnected')
})

t.test('a piece refetched from one peer after a failed copy goes to another when that peer stops halfway', async (t) => {
  // One 1 MiB piece. Garbage peer G and honest peer W are each asked for half of it; the copy
  // fails, G leaves, and W alone is asked for the piece again: it sends 16 blocks and no more. W
  // is snubbed, and the seed that came meanwhile must be asked for the piece (not left waiting
  // for W): what W sent is dropped and the seed sends the piece whole.
  const f = await engineFixture(t, 1024)
  const { file, data, tor } = await f.image('one.img', 1024 * 1024, 1)
  const { leecher, l, seedAddr, leechPort: port } = await f.seedAndLeecher(file, tor)
  const g = await rawPeer(port, tor.infoHash, { bits: new Uint8Array([0x80]), unchoke: true })
  const gKey = `127.0.0.1:${g.sock.localPort as number}`
  const gotHalf = async (p: RawPeer): Promise<void> => { while (p.requests.length < 32) await sleep(20) }
  await gotHalf(g)
  const w = await rawPeer(port, tor.infoHash, { bits: new Uint8Array([0x80]), unchoke: true })
  await gotHalf(w)
  for (const r of w.requests.slice(0, 32)) w.send(pieceMsg(r.index, r.begin, data.subarray(r.begin, r.begin + r.length)))
  await sleep(200)
  for (const r of g.requests.slice(0, 32)) g.send(pieceMsg(r.index, r.begin, Buffer.alloc(r.length, 0x55)))
  g.sock.end()
  while (l.counters.hashFailures === 0) await sleep(20)
  const mark = w.requests.length
  let sent = 0
  w.onRequest = (r) => { if (w.requests.length > mark && sent < 16) { sent++; w.send(pieceMsg(r.index, r.begin, data.subarray(r.begin, r.begin + r.length))) } }
  while (sent < 16) await sleep(20)
  leecher.addPeer(tor.infoHash, seedAddr)
  const deadline = Date.now() + 60_000
  while (!l.complete && Date.now() < deadline) await sleep(100)
  t.comment(`hash failures ${l.counters.hashFailures}, banned ${JSON.stringify(l.counters.bannedPeers)}`)
  t.ok(l.complete, 'the piece comes from the seed')
  t.equal(l.counters.hashFailures, 1, 'one failed copy')
  t.same(l.counters.bannedPeers, [gKey], 'the garbage sender is banned once a copy passed, though gone; W is not')
})

t.test('a banned incoming peer that comes back with a new peer id and source port is refused once its host has had a few bans', async (t) => {
  const { HOST_BAN_AFTER } = await gateConsts()
  const { Swarm, tor, log, opts } = await engineFixture(t, 8 * 64 * 1024)
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leecher.close() })
  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await sleep(20)
  const port = await leecher.listening()
  const rounds: Array<{ requests: number, closed: boolean }> = []
  for (let round = 0; round < HOST_BAN_AFTER + 3; round++) {
    const a = await rawPeer(port, tor.infoHash, { bits: new Uint8Array([0xff]), unchoke: true })
    garbage(a)
    await Promise.race([a.closed, sleep(5000)])
    rounds.push({ requests: a.requests.length, closed: a.isClosed() })
    a.sock.destroy()
  }
  t.comment(`rounds ${JSON.stringify(rounds)}; hash failures ${l.counters.hashFailures}, banned ${JSON.stringify(l.counters.bannedPeers)}`)
  t.ok(rounds.slice(0, HOST_BAN_AFTER).every((r) => r.requests > 0 && r.closed), `the first ${HOST_BAN_AFTER} rounds are served, fail and are banned`)
  t.ok(rounds.slice(HOST_BAN_AFTER).every((r) => r.requests === 0 && r.closed), 'later rounds are refused at the handshake')
  t.equal(l.counters.hashFailures, HOST_BAN_AFTER, 'one bad piece a round until then, none after')
  t.equal(l.counters.bannedPeers.length, HOST_BAN_AFTER, 'the ban list stops growing')
})

t.test('idle peers holding every connection slot of a seed and of a downloader do not lock an honest download out', async (t) => {
  const { IDLE_EVICT_MS } = await gateConsts()
  const { Swarm, src, tor, log, opts, seedFile } = await engineFixture(t, 1024 * 1024)
  const seeder = new Swarm(opts('seed'), log) // maxConns 20 in the fixture
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leecher.close(); await seeder.close() })
  const s = await seedFile(seeder, src, tor)
  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await sleep(20)
  // Peers that only handshake (as fresh agents with no pieces) and send keep-alives.
  const idle: RawPeer[] = []
  for (const port of [await seeder.listening(), await leecher.listening()]) {
    for (let k = 0; k < 20; k++) idle.push(await rawPeer(port, tor.infoHash))
  }
  const ka = setInterval(() => { for (const p of idle) p.send(encode.keepAlive()) }, 10_000)
  t.teardown(() => { clearInterval(ka); for (const p of idle) p.sock.destroy() })
  await sleep(500)
  t.equal(s.numPeers, 20, 'the seed is full')
  t.equal(l.numPeers, 20, 'the downloader is full')
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  const deadline = Date.now() + IDLE_EVICT_MS + 60_000
  while (!l.complete && Date.now() < deadline) await sleep(200)
  t.comment(`downloader has ${l.picker.haveCount}/${l.pieceCount} pieces; idle peers closed: ${idle.filter((p) => p.isClosed()).length}`)
  t.ok(l.complete, 'the honest download completes')
  t.ok(s.numPeers <= 20 && l.numPeers <= 20, 'within the connection limits')
})
