import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join, resolve } from 'node:path'
import t from 'tap'
import { MsgId, ORIGIN_PEER_ID_PREFIX, WireDecoder, encode, encodeHandshake } from '../lib/peer-wire.js'
import { engineFixture } from './helpers/engine-fixture.js'

// How an agent shares an origin with the swarm, against a real engine (dist/) over TCP.

/**
 * An origin seed that takes requests and never answers them: it records every request and
 * every cancel, so a test sees what the agent asked of it and what it took back.
 */
async function startSilentOrigin (infoHash: Buffer, pieces: number): Promise<{ port: number, requests: Set<string>, cancels: Set<string>, close: () => Promise<void> }> {
  const requests = new Set<string>()
  const cancels = new Set<string>()
  const bits = new Uint8Array(Math.ceil(pieces / 8))
  for (let i = 0; i < pieces; i++) bits[i >> 3] = (bits[i >> 3] as number) | (0x80 >> (i % 8))
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    const d = new WireDecoder({
      onHandshake: () => {
        socket.write(encodeHandshake(infoHash, Buffer.concat([Buffer.from(ORIGIN_PEER_ID_PREFIX), randomBytes(12)])))
        socket.write(encode.bitfield(bits))
      },
      onKeepAlive: () => {},
      onPiece: () => {},
      onMessage: (id, p) => {
        if (id === MsgId.interested) socket.write(encode.simple(MsgId.unchoke))
        if (id !== MsgId.request && id !== MsgId.cancel) return
        const key = `${p.readUInt32BE(0)}/${p.readUInt32BE(4)}`;
        (id === MsgId.request ? requests : cancels).add(key)
      }
    }, 1024 * 1024)
    socket.on('data', (chunk) => { try { d.push(chunk) } catch { socket.destroy() } })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    requests,
    cancels,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

/** Gives an engine the bytes [from, to) of the image on disk, zeros elsewhere, as a download part-way through. */
async function holdPart (swarm: { downloadDir: (infoHash: string) => string }, infoHash: string, whole: Buffer, from: number, to: number): Promise<void> {
  const partial = Buffer.alloc(whole.length)
  whole.copy(partial, from, from, to)
  await mkdir(swarm.downloadDir(infoHash), { recursive: true })
  await writeFile(join(swarm.downloadDir(infoHash), 'img.raw'), partial)
}

/** A poll for a condition, shared by one test's steps: all of them together get `ms`, then the test's asserts tell what failed. */
function untilWithin (ms: number): (ok: () => boolean) => Promise<void> {
  const deadline = Date.now() + ms
  return async (ok) => { while (!ok() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10)) }
}

t.test('requests at the origin for pieces a fellow agent holds are cancelled, and the agent serves them', async (t) => {
  const { Swarm, src, size, tor, log, opts } = await engineFixture(t, 2 * 1024 * 1024 + 4321)
  const pieceLength = 64 * 1024
  const pieces = Math.ceil(size / pieceLength)
  const origin = await startSilentOrigin(Buffer.from(tor.infoHash, 'hex'), pieces)
  const a = new Swarm(opts('a'), log)
  const b = new Swarm(opts('b'), log)
  t.teardown(async () => { await a.close(); await b.close(); await origin.close() })
  // b is a fellow agent part-way through: it holds the first 4 pieces, the rest of its file is zeros.
  const held = 4
  await holdPart(b, tor.infoHash, await readFile(src), 0, held * pieceLength)
  const hb = b.add(tor.infoHash, tor.bytes, [])
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const until = untilWithin(10_000)
  await until(() => ha.ready && hb.ready)
  t.equal(hb.picker.haveCount, held, 'b kept the pieces it holds')

  // Alone with the origin, a asks it for its share, every piece, from the front: 0, 1, 2, ...
  a.addPeer(tor.infoHash, `127.0.0.1:${origin.port}`)
  await until(() => origin.requests.size > 0)
  const pieceOf = (key: string): number => Number(key.split('/')[0])
  await until(() => [...origin.requests].some((k) => pieceOf(k) >= held))
  const asked = [...origin.requests].filter((k) => pieceOf(k) < held)
  t.equal(asked.length, held * 4, `a asked the origin for the first ${held} pieces (${asked.length} blocks) and more`)

  // b's bitfield shows those pieces: a takes back what it asked of the origin and gets them from b.
  // The origin never answers and b does not hold the rest, so without that cancel a would wait
  // until it gives the origin up as snubbed (torrent-session.ts), and then cancel everything.
  a.addPeer(tor.infoHash, `127.0.0.1:${await b.listening()}`)
  await until(() => asked.every((k) => origin.cancels.has(k)) && ha.picker.haveCount >= held)
  t.same(asked.filter((k) => !origin.cancels.has(k)), [], 'every block asked of the origin for those pieces was cancelled')
  // b joined the download, so a also hands over the pieces now in b's share (the test below).
  const { ownersOf } = await import(resolve('dist/swarm/share.js')) as typeof import('../swarm/share.js')
  const { owners, own } = ownersOf(a.peerId, [b.peerId], pieces)
  t.same([...origin.cancels].filter((k) => pieceOf(k) >= held && owners[pieceOf(k)] === own), [], 'and only those: the requests for the rest of its share stand (no snub)')
  t.equal(ha.picker.haveCount, held, 'a has the pieces b holds')
  t.equal(ha.counters.bytesFromPeers, held * pieceLength, 'from b, each byte once')
})

t.test('pieces asked of the origin that move to a newcomer\'s share are handed over to it', async (t) => {
  const { Swarm, size, tor, log, opts } = await engineFixture(t, 2 * 1024 * 1024 + 4321)
  const { ownersOf } = await import(resolve('dist/swarm/share.js')) as typeof import('../swarm/share.js')
  const pieceLength = 64 * 1024
  const pieces = Math.ceil(size / pieceLength)
  const origin = await startSilentOrigin(Buffer.from(tor.infoHash, 'hex'), pieces)
  const a = new Swarm(opts('a'), log)
  t.teardown(async () => { await a.close(); await origin.close() })
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const until = untilWithin(10_000)
  await until(() => ha.ready)
  const pieceOf = (key: string): number => Number(key.split('/')[0])

  // Alone, a asks the origin for the front of the file, all of it its share.
  a.addPeer(tor.infoHash, `127.0.0.1:${origin.port}`)
  await until(() => origin.requests.size >= 32)
  const askedAlone = new Set([...origin.requests].map(pieceOf))
  t.ok(askedAlone.size >= 4, `a asked for ${askedAlone.size} pieces`)

  // b, a fellow agent with nothing yet, connects: shares are split, and what is now b's goes back.
  // Peer ids are random; b is one that takes at least 4 of those pieces (16 blocks), for a asks
  // again only once that much room is free (torrent-session.ts).
  const movedTo = (peer: Buffer): number[] => {
    const { owners, own } = ownersOf(a.peerId, [peer], pieces)
    return [...askedAlone].filter((i) => owners[i] !== own)
  }
  let b = new Swarm(opts('b'), log)
  for (let n = 0; n < 50 && movedTo(b.peerId).length < 4; n++) {
    await b.close()
    b = new Swarm(opts(`b${n}`), log)
  }
  t.teardown(async () => { await b.close() })
  const hb = b.add(tor.infoHash, tor.bytes, [])
  await until(() => hb.ready)
  const { owners, own } = ownersOf(a.peerId, [b.peerId], pieces)
  const toB = movedTo(b.peerId)
  t.ok(toB.length >= 4, `some of those pieces (${toB.join(' ')}) are in b's share once both are downloading`)
  a.addPeer(tor.infoHash, `127.0.0.1:${await b.listening()}`)
  await until(() => toB.every((i) => origin.cancels.has(`${i}/0`)))
  const cancelled = new Set([...origin.cancels].map(pieceOf))
  t.same([...cancelled].sort((x, y) => x - y), toB.sort((x, y) => x - y), 'exactly the pieces that moved to b are cancelled')
  await until(() => [...origin.requests].some((k) => !askedAlone.has(pieceOf(k))))
  const askedAfter = [...origin.requests].map(pieceOf).filter((i) => !askedAlone.has(i))
  t.ok(askedAfter.length > 0 && askedAfter.every((i) => owners[i] === own), 'and a asks the origin for more of its own share instead')
})

t.test('once every piece is held by an agent, the origin\'s spare upload is asked for too', async (t) => {
  const { Swarm, src, size, tor, log, opts } = await engineFixture(t, 2 * 1024 * 1024 + 4321)
  const pieceLength = 64 * 1024
  const pieces = Math.ceil(size / pieceLength)
  const half = Math.floor(pieces / 2)
  const origin = await startSilentOrigin(Buffer.from(tor.infoHash, 'hex'), pieces)
  const a = new Swarm(opts('a'), log)
  // b is slow to serve (a block a second): a's requests to it stay in flight while the origin comes.
  const b = new Swarm({ ...opts('b'), uploadLimit: 16 * 1024 }, log)
  t.teardown(async () => { await a.close(); await b.close(); await origin.close() })
  // a holds the first half of the file, b the second: between them, every piece is out.
  const whole = await readFile(src)
  await holdPart(a, tor.infoHash, whole, 0, half * pieceLength)
  await holdPart(b, tor.infoHash, whole, half * pieceLength, size)
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const hb = b.add(tor.infoHash, tor.bytes, [])
  const until = untilWithin(10_000)
  await until(() => ha.ready && hb.ready)
  t.equal(ha.picker.haveCount, half, 'a kept the first half')
  a.addPeer(tor.infoHash, `127.0.0.1:${await b.listening()}`)
  await until(() => ha.picker.avail[pieces - 1] === 1)
  t.equal(ha.picker.seedIdle(), true, 'a sees every piece it lacks held by b')
  a.addPeer(tor.infoHash, `127.0.0.1:${origin.port}`)
  const pieceOf = (key: string): number => Number(key.split('/')[0])
  await until(() => origin.requests.size > 0)
  const asked = [...new Set([...origin.requests].map(pieceOf))]
  t.ok(asked.length > 0 && asked.every((i) => i >= half), `a asks the origin for pieces b holds (${asked.join(' ')}): the origin has nothing else to send`)
})
