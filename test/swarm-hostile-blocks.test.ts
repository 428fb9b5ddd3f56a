import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BLOCK_LENGTH, encode } from '../lib/peer-wire.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { pieceMsg, rawPeer, sleep, type RawPeer } from './helpers/raw-peer.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'

// What real engines do with piece messages that answer nothing they asked, and with a peer that
// makes the seed hold piece buffers for it; plus what a small download costs the seed's upload.

const KiB = 1024

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
  const { Swarm, src, tor, log, opts } = await engineFixture(t, pieces * 64 * KiB)
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

  await mkdir(seeder.downloadDir(tor.infoHash), { recursive: true })
  await copyFile(src, join(seeder.downloadDir(tor.infoHash), 'img.raw'))
  const s = seeder.add(tor.infoHash, tor.bytes, [])
  await s.done
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  // A deadline only to fail rather than hang: before the fix the download never completed.
  const finished = await Promise.race([l.done.then(() => true), deadline(60_000)])
  t.ok(finished, `the leecher completes from the honest seed (has ${l.picker.haveCount}/${pieces}, orphans ${orphans(l).join(' ')})`)
})

// Endgame began in the same pick() as the last pieces and asked the same peer for the same blocks.
t.test('a torrent that fits in one request batch costs its only seed one copy of upload', async (t) => {
  const { Swarm, src, tor, size, log, opts } = await engineFixture(t, 256 * KiB)
  const seeder = new Swarm(opts('seed'), log)
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leecher.close(); await seeder.close() })
  await mkdir(seeder.downloadDir(tor.infoHash), { recursive: true })
  await copyFile(src, join(seeder.downloadDir(tor.infoHash), 'img.raw'))
  const s = seeder.add(tor.infoHash, tor.bytes, [])
  await s.done
  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await sleep(20)
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  await l.done
  // Blocks still on the wire when the leecher completed are counted by the seed when it sent them, before this point.
  await sleep(500)
  t.equal(s.counters.uploaded, size, `the seed sent each byte once (sent ${s.counters.uploaded} of ${size})`)
})
