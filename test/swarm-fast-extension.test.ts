import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BLOCK_LENGTH, MsgId, ORIGIN_PEER_ID_PREFIX, encode } from '../lib/peer-wire.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { pieceMsg, rawPeer, sleep } from './helpers/raw-peer.js'

// BEP 6 (the fast extension) in the engine (dist/), over TCP: the messages both ways, and the
// origin's egress budget, which rejects what other agents can relay.

const PIECE = 64 * 1024

async function until (what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

function triples (id: number, reqs: Array<[number, number]>): Buffer {
  return Buffer.concat(reqs.map(([index, begin]) => encode.triple(id, index, begin, BLOCK_LENGTH)))
}

t.test('a seed answers every request of a BEP 6 peer exactly once: the block or a reject', async (t) => {
  const { Swarm, tor, log, opts, seedFile } = await engineFixture(t, 2 * 1024 * 1024)
  const seeder = new Swarm(opts('seed'), log)
  t.teardown(async () => { await seeder.close() })
  await seedFile(seeder)
  const port = await seeder.listening()

  const fast = await rawPeer(port, tor.infoHash, { prefix: '-XX0000-', fast: true })
  t.teardown(() => { fast.sock.destroy() })
  await until('the bitfield', () => fast.got.includes(MsgId.bitfield))
  fast.send(encode.triple(MsgId.request, 0, 0, BLOCK_LENGTH))
  await until('a reject', () => fast.rejects.length > 0)
  t.same(fast.rejects, ['0/0/16384'], 'a request while choked is rejected')

  fast.send(encode.simple(MsgId.interested))
  await until('the unchoke', () => fast.got.includes(MsgId.unchoke))
  // Requests and their cancels in one write: whichever the seed reads first, each block gets one answer.
  const blocks: Array<[number, number]> = [0, 1, 2, 3].flatMap((b) => [[1, b * BLOCK_LENGTH], [2, b * BLOCK_LENGTH]] as Array<[number, number]>)
  const pieces: string[] = []
  fast.onPiece = (index, begin) => { pieces.push(`${index}/${begin}`) }
  const rejectsBefore = fast.rejects.length
  fast.send(Buffer.concat([triples(MsgId.request, blocks), triples(MsgId.cancel, blocks)]))
  const answers = (): string[] => [...pieces, ...fast.rejects.slice(rejectsBefore).map((r) => r.split('/').slice(0, 2).join('/'))]
  await until('an answer to each request', () => answers().length >= blocks.length)
  await sleep(300)
  t.equal(answers().length, blocks.length, `as many answers as requests (${pieces.length} blocks, ${answers().length - pieces.length} rejects)`)
  t.same(new Set(answers()), new Set(blocks.map(([i, b]) => `${i}/${b}`)), 'one for each block')

  const plain = await rawPeer(port, tor.infoHash, { prefix: '-XX0000-' })
  t.teardown(() => { plain.sock.destroy() })
  await until('the bitfield', () => plain.got.includes(MsgId.bitfield))
  plain.send(encode.triple(MsgId.request, 0, 0, BLOCK_LENGTH))
  await sleep(300)
  t.same(plain.rejects, [], 'a peer without BEP 6 gets no reject (BEP 3 drops the request)')
  t.notOk(plain.isClosed(), 'and stays connected')
})

t.test('a downloader speaks BEP 6: have none, have all, and a rejected piece left to other peers', async (t) => {
  const { Swarm, src, size, tor, log, opts, seedFile } = await engineFixture(t, 2 * 1024 * 1024 + 4321)
  const data = await readFile(src)
  const pieces = Math.ceil(size / PIECE)
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leecher.close() })
  const h = leecher.add(tor.infoHash, tor.bytes, [])
  await until('the download ready', () => h.ready)
  const port = await leecher.listening()

  const plain = await rawPeer(port, tor.infoHash, { prefix: '-XX0000-' })
  t.teardown(() => { plain.sock.destroy() })
  const fast = await rawPeer(port, tor.infoHash, { prefix: '-XX0000-', fast: true })
  t.teardown(() => { fast.sock.destroy() })
  await until('have none', () => fast.got.length > 0)
  t.equal(fast.got[0], MsgId.haveNone, 'an engine with no piece sends have none to a BEP 6 peer')
  t.same(plain.got, [], 'and nothing to a peer without BEP 6')

  // The raw peer says it has everything, serves every piece but 0, and rejects piece 0.
  fast.onRequest = (r) => {
    if (r.index === 0) fast.send(encode.triple(MsgId.reject, r.index, r.begin, r.length))
    else fast.send(pieceMsg(r.index, r.begin, data.subarray(r.index * PIECE + r.begin, r.index * PIECE + r.begin + r.length)))
  }
  fast.send(encode.simple(MsgId.haveAll))
  await until('interest', () => fast.got.includes(MsgId.interested))
  t.pass('have all makes the engine interested')
  fast.send(encode.simple(MsgId.unchoke))
  await until('every piece but the rejected one', () => h.picker.haveCount === pieces - 1)
  await sleep(500)
  const asked0 = fast.requests.filter((r) => r.index === 0).map((r) => r.begin)
  t.same(asked0, [0, 1, 2, 3].map((b) => b * BLOCK_LENGTH), 'each block of the rejected piece was asked once, and not again')
  t.notOk(h.picker.hasPiece(0), 'the rejected piece is missing')
  const info = h.peerInfo()
  t.same(info.find((p) => p.address === `127.0.0.1:${fast.sock.localPort}`)?.extensions, ['BEP 6'], 'the peers API shows the extensions a connection speaks')
  t.same(info.find((p) => p.address === `127.0.0.1:${plain.sock.localPort}`)?.extensions, [], 'none for the plain peer')

  const seeder = new Swarm(opts('seed'), log)
  t.teardown(async () => { await seeder.close() })
  await seedFile(seeder)
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  await h.done
  const got = await readFile(join(leecher.downloadDir(tor.infoHash), 'img.raw'))
  t.equal(createHash('sha512').update(got).digest('hex'), createHash('sha512').update(data).digest('hex'), 'the download completes from another peer')
})

/**
 * One origin (the index server's peer id) and two agents. The agents upload at 512 KiB/s and the
 * origin without limit, so once the origin has sent each piece, its spare upload is far the
 * fastest way to the other half: without a budget the agents take most of it from there.
 */
async function originAndTwoAgents (t: Test, egressBudget: number): Promise<{ uploaded: number, refused: number, size: number }> {
  const { Swarm, tor, size, log, opts, seedFile } = await engineFixture(t, 4 * 1024 * 1024)
  const origin = new Swarm({ ...opts('origin', ORIGIN_PEER_ID_PREFIX), egressBudget }, log)
  const a = new Swarm({ ...opts('a'), uploadLimit: 512 * 1024 }, log)
  const b = new Swarm({ ...opts('b'), uploadLimit: 512 * 1024 }, log)
  t.teardown(async () => { await a.close(); await b.close(); await origin.close() })
  const ho = await seedFile(origin)
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const hb = b.add(tor.infoHash, tor.bytes, [])
  await until('the downloads ready', () => ha.ready && hb.ready)
  const [po, pb] = [await origin.listening(), await b.listening()]
  a.addPeer(tor.infoHash, `127.0.0.1:${pb}`)
  await until('the agents connected', () => ha.peers.size === 1 && hb.peers.size === 1)
  a.addPeer(tor.infoHash, `127.0.0.1:${po}`)
  b.addPeer(tor.infoHash, `127.0.0.1:${po}`)
  await Promise.all([ha.done, hb.done])
  return { uploaded: ho.counters.uploaded, refused: ho.budget?.refused ?? 0, size }
}

t.test('an origin with an egress budget leaves to the agents what they can relay', async (t) => {
  const free = await originAndTwoAgents(t, 0)
  t.ok(free.uploaded > 1.2 * free.size, `without a budget the origin sends the agents much of the second copy (${(free.uploaded / free.size).toFixed(2)} F)`)
  const held = await originAndTwoAgents(t, 1)
  t.ok(held.uploaded <= 1.1 * held.size, `with a budget of 1 copy it sends about one (${(held.uploaded / held.size).toFixed(2)} F)`)
  t.ok(held.uploaded >= held.size, 'and every piece at least once')
  t.ok(held.refused > 0, `it rejected requests (${held.refused} blocks)`)
})
