import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import t from 'tap'
import { BLOCK_LENGTH, MsgId, encode } from '../lib/peer-wire.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { pieceMsg, rawPeer, sleep, type RawPeer } from './helpers/raw-peer.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import type { PeerConn } from '../swarm/peer-conn.js'

// What real engines do with piece messages that answer nothing they asked, and with a peer that
// makes the seed hold piece buffers for it; plus what a small download costs the seed's upload.

const KiB = 1024
const MiB = 1024 * 1024

/** Resolves with false after `ms`; its timer does not keep the test process alive. */
async function deadline (ms: number): Promise<false> { return await new Promise((resolve) => setTimeout(() => { resolve(false) }, ms).unref()) }

/** Resolves when `p` closes, or after `ms`: the caller asserts on isClosed(). */
async function closedWithin (p: RawPeer, ms: number): Promise<void> { await Promise.race([p.closed, deadline(ms)]) }

/** Blocks the picker counts as requested (state 1) that no connected peer has in flight: nobody will ever ask for them again. */
function orphans (h: TorrentHandle): string[] {
  const out: string[] = []
  for (const p of h.picker.pending.values()) {
    for (let b = 0; b < p.blocks; b++) {
      if (p.state[b] !== 1) continue
      let asked = 0
      for (const peer of h.peers) if (peer.requested.has(p.index * 1024 + b)) asked++
      if (asked < (p.reqCount[b] as number)) out.push(`${p.index}/${b * BLOCK_LENGTH}`)
    }
  }
  return out
}

t.test('a piece message outside the torrent\'s block geometry drops its sender', async (t) => {
  const pieces = 8
  const { Swarm, tor, log, opts } = await engineFixture(t, pieces * 64 * KiB)
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leecher.close() })
  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await sleep(20)
  const port = await leecher.listening()
  const forged: Array<[string, Buffer]> = [
    ['index past the last piece', pieceMsg(pieces, 0, Buffer.alloc(BLOCK_LENGTH))],
    ['begin not on a block boundary', pieceMsg(1, 1000, Buffer.alloc(BLOCK_LENGTH))],
    ['begin past the piece', pieceMsg(1, 64 * KiB, Buffer.alloc(BLOCK_LENGTH))],
    ['a short block', pieceMsg(1, 0, Buffer.alloc(100))],
    ['begin that collides with block (3, 1) under blockKey', pieceMsg(0, 3 * 2 ** 24 + BLOCK_LENGTH, Buffer.alloc(0))]
  ]
  for (const [what, msg] of forged) {
    const a = await rawPeer(port, tor.infoHash, { bits: new Uint8Array([0xff]), unchoke: true })
    a.send(msg)
    await closedWithin(a, 10_000)
    t.ok(a.isClosed(), `${what}: the peer is dropped`)
    a.sock.destroy()
  }
  // A well-formed block nobody asked for (a cancel crossed it on the wire) costs the peer nothing.
  const b = await rawPeer(port, tor.infoHash, { bits: new Uint8Array([0x80]), unchoke: true })
  b.send(pieceMsg(7, 0, Buffer.alloc(BLOCK_LENGTH)))
  b.send(encode.keepAlive())
  await sleep(300)
  t.notOk(b.isClosed(), 'a block of the right shape that was not asked for is tolerated')
  t.notOk(l.picker.pending.has(7), 'and not stored')
  b.sock.destroy()
})

t.test('forged piece(0, i*2^24 + b*16384) cannot orphan a requested block: an honest seed then completes the download', async (t) => {
  const pieces = 8
  const { Swarm, src, tor, log, opts, seedFile } = await engineFixture(t, pieces * 64 * KiB)
  const data = await readFile(src)
  const leecher = new Swarm(opts('leech'), log)
  const seeder = new Swarm(opts('seed'), log)
  t.teardown(async () => { await leecher.close(); await seeder.close() })
  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await sleep(20)
  const lport = await leecher.listening()

  // The attacker holds piece 0 (it could have fetched it anywhere) and claims every piece; each
  // request for another piece it answers with an empty block of piece 0 whose key is the request's.
  const a = await rawPeer(lport, tor.infoHash, { bits: new Uint8Array([0xff]), unchoke: true })
  let forgedSent = 0
  a.onRequest = (r) => {
    if (r.index === 0) a.send(pieceMsg(0, r.begin, data.subarray(r.begin, r.begin + r.length)))
    else { forgedSent++; a.send(pieceMsg(0, r.index * 1024 * BLOCK_LENGTH + r.begin, Buffer.alloc(0))) }
  }
  await closedWithin(a, 10_000)
  t.ok(forgedSent > 0, 'the attacker forged blocks')
  t.ok(a.isClosed(), 'the attacker is dropped at its first forged block')
  await sleep(100)
  t.same(orphans(l), [], 'no block is left counted as requested with nobody asked for it')

  await seedFile(seeder, src, tor)
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  // A deadline only to fail rather than hang: before the fix the download never completed.
  const finished = await Promise.race([l.done.then(() => true), deadline(60_000)])
  t.ok(finished, `the leecher completes from the honest seed (has ${l.picker.haveCount}/${pieces}, orphans ${orphans(l).join(' ')})`)
})

// Endgame began in the same pick() as the last pieces and asked the same peer for the same blocks.
t.test('a torrent that fits in one request batch costs its only seed one copy of upload', async (t) => {
  const { tor, size, seedAndLeecher } = await engineFixture(t, 256 * KiB)
  const { leecher, s, l, seedAddr } = await seedAndLeecher()
  leecher.addPeer(tor.infoHash, seedAddr)
  await l.done
  // Blocks still on the wire when the leecher completed are counted by the seed when it sent them, before this point.
  await sleep(500)
  t.equal(s.counters.uploaded, size, `the seed sent each byte once (sent ${s.counters.uploaded} of ${size})`)
})

/** A seed of `pieces` random 1 MiB pieces, placed as a finished download. */
async function bigSeed (t: Parameters<typeof engineFixture>[0], pieces: number): Promise<{ s: TorrentHandle, port: number, data: Buffer }> {
  const { Swarm, log, opts, image, seedFile } = await engineFixture(t, 1024)
  const { file, data, tor } = await image('big.img', MiB, pieces)
  const seeder = new Swarm(opts('seed'), log)
  t.teardown(async () => { await seeder.close() })
  return { s: await seedFile(seeder, file, tor), port: await seeder.listening(), data }
}

/**
 * A raw peer that is unchoked, then stops reading and asks blocks of piece 0 until the seed's
 * socket queues (the kernel's buffers are full): from then on every block the seed sends stays
 * in its memory until the peer reads again. Returns the peer, the seed's connection for it and
 * how many filler blocks it asked.
 */
async function stalledPeer (s: TorrentHandle, port: number): Promise<{ a: RawPeer, conn: PeerConn, filler: number }> {
  const a = await rawPeer(port, s.infoHash, { interested: true })
  while (!a.got.includes(MsgId.unchoke)) await sleep(10)
  a.sock.pause()
  const conn = [...s.peers].find((p) => !p.closed && p.socket.remotePort === a.sock.localPort)
  if (conn === undefined) throw new Error('the seed has no connection for the test peer')
  let filler = 0
  while (conn.socket.writableLength === 0 && filler < 5000) {
    for (let k = 0; k < 16; k++, filler++) a.send(encode.triple(MsgId.request, 0, 0, BLOCK_LENGTH))
    await sleep(5)
  }
  return { a, conn, filler }
}

/** Waits until the seed has served what it will to `conn`: its queue of requests stops shrinking. */
async function servedAll (conn: PeerConn): Promise<void> {
  let last = -1
  while (conn.uploadQueue.length !== last) { last = conn.uploadQueue.length; await sleep(300) }
}

t.test('a peer that stops reading cannot make the seed hold a piece buffer per piece', async (t) => {
  const { pinnedBytes, PIN_BUDGET } = await import(resolve('dist/swarm/upload.js')) as typeof import('../swarm/upload.js')
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const pieces = 96
  const pieceLength = MiB
  const { s, port, data } = await bigSeed(t, pieces)

  gc()
  const before = process.memoryUsage().arrayBuffers
  // Half the pieces asked 1 byte at a time, the other half 16 KiB at a time: both used to pin a piece each.
  for (const [what, first, length] of [['1-byte', 1, 1], ['16 KiB', pieces / 2, BLOCK_LENGTH]] as const) {
    const { a, conn, filler } = await stalledPeer(s, port)
    t.ok(conn.socket.writableLength > 0, `${what}: the seed's socket queues (${filler} filler blocks)`)
    const asked: Array<[number, number]> = []
    for (let i = first; i < first + pieces / 2 - 1; i++) { a.send(encode.triple(MsgId.request, i, 0, length)); asked.push([i, length]) }
    await servedAll(conn)
    gc()
    const grown = process.memoryUsage().arrayBuffers - before
    t.comment(`${what}: socket queue ${conn.socket.writableLength} bytes, ${conn.uploadQueue.length} requests waiting, pinned ${pinnedBytes(conn)} bytes, arrayBuffers +${(grown / MiB).toFixed(1)} MiB`)
    t.ok(pinnedBytes(conn) <= PIN_BUDGET, `${what}: the queued blocks pin at most the budget`)
    // At most the seed's 16 MiB cache, the pool's 8 MiB of idle buffers, the budget and the 1 MiB queue;
    // before the fix, one piece per request (47 MiB).
    t.ok(grown < 40 * MiB, `${what}: memory grows by less than ${pieces / 2} pieces`)

    // It reads again: every block arrives, and the copies carry the right bytes.
    const got = new Map<number, Buffer>()
    let fillers = 0
    a.onPiece = (index, begin, block) => {
      if (index === 0) fillers++
      else if (begin === 0) got.set(index, Buffer.from(block))
    }
    a.sock.resume()
    while ((fillers < filler || got.size < asked.length) && !a.isClosed()) await sleep(50)
    t.equal(got.size, asked.length, `${what}: every asked block arrived`)
    t.ok(asked.every(([i, len]) => got.get(i)?.equals(data.subarray(i * pieceLength, i * pieceLength + len)) === true), `${what}: with the file's bytes`)
    t.equal(pinnedBytes(conn), 0, `${what}: nothing stays pinned once the writes are done`)
    a.sock.destroy()
    await a.closed
  }
})

t.test('many peers that stop reading cannot together make the seed hold more than its torrent-wide budget', async (t) => {
  const { pinnedBytes, TORRENT_PIN_BUDGET } = await import(resolve('dist/swarm/upload.js')) as typeof import('../swarm/upload.js')
  const peers = 16
  const perPeer = 4 // pieces each: within the per-connection budget (4 MiB), 64 MiB together
  const { s, port, data } = await bigSeed(t, 1 + peers * perPeer)
  const stalled: Array<{ a: RawPeer, conn: PeerConn, first: number }> = []
  for (let k = 0; k < peers; k++) {
    const { a, conn } = await stalledPeer(s, port)
    const first = 1 + k * perPeer
    for (let i = first; i < first + perPeer; i++) a.send(encode.triple(MsgId.request, i, 0, BLOCK_LENGTH))
    stalled.push({ a, conn, first })
  }
  for (const { conn } of stalled) await servedAll(conn)
  const store = s.store
  if (store === undefined) throw new Error('the seed has no store')
  const torrent = pinnedBytes(store)
  const sum = stalled.reduce((n, { conn }) => n + pinnedBytes(conn), 0)
  t.comment(`pinned: ${(torrent / MiB).toFixed(0)} MiB for the torrent, ${(sum / MiB).toFixed(0)} MiB summed over ${peers} connections; ${stalled.reduce((n, { conn }) => n + conn.uploadQueue.length, 0)} requests waiting`)
  t.ok(torrent > 0, 'the queued blocks do pin piece buffers (the test measures something)')
  t.ok(torrent <= TORRENT_PIN_BUDGET, `the torrent's queued blocks pin at most ${TORRENT_PIN_BUDGET / MiB} MiB`)

  // They read again: every block arrives with the file's bytes, and nothing stays pinned.
  const ok = await Promise.all(stalled.map(async ({ a, first }) => {
    const got = new Map<number, Buffer>()
    a.onPiece = (index, begin, block) => { if (index !== 0 && begin === 0) got.set(index, Buffer.from(block)) }
    a.sock.resume()
    while (got.size < perPeer && !a.isClosed()) await sleep(50)
    let same = true
    for (let i = first; i < first + perPeer; i++) same &&= got.get(i)?.equals(data.subarray(i * MiB, i * MiB + BLOCK_LENGTH)) === true
    return same
  }))
  t.ok(ok.every(Boolean), 'every stalled peer got its blocks with the file\'s bytes')
  for (const { conn } of stalled) while (conn.socket.writableLength > 0 && !conn.closed) await sleep(50)
  t.equal(pinnedBytes(store), 0, 'nothing stays pinned once the writes are done')
  for (const { a } of stalled) a.sock.destroy()
})
