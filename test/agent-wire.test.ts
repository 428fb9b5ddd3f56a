import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { BLOCK_LENGTH, MsgId, ORIGIN_PEER_ID_PREFIX, WireDecoder, encode, encodeHandshake, clearBit, clearSpareBits, hasBit, isImgdistPeerId, setBit, type WireHandler } from '../lib/peer-wire.js'
import { TokenBucket } from '../swarm/rate-meter.js'
import { engineFixture } from './helpers/engine-fixture.js'

// The agent's BitTorrent engine: codec, picker and share rule as units, then a real Swarm
// (the built dist/ code, as the agent runs it) against two real engines and a hostile raw socket.


function collect (): { h: WireHandler, out: string[] } {
  const out: string[] = []
  return {
    out,
    h: {
      onHandshake: (hs) => out.push(`hs:${hs.infoHash.toString('hex').slice(0, 4)}`),
      onKeepAlive: () => out.push('ka'),
      onMessage: (id, p) => out.push(`m${id}:${p.length}`),
      onPiece: (i, b, block) => out.push(`p${i}/${b}:${block.length}`)
    }
  }
}

t.test('wire codec: any split of the byte stream yields the same messages', async (t) => {
  const ih = Buffer.alloc(20, 0xab)
  const block = Buffer.alloc(BLOCK_LENGTH, 7)
  const stream = Buffer.concat([encodeHandshake(ih, Buffer.alloc(20, 1)), encode.bitfield(new Uint8Array([0xf0])), encode.keepAlive(),
    encode.have(3), encode.triple(MsgId.request, 1, 0, BLOCK_LENGTH), encode.pieceHeader(2, BLOCK_LENGTH, block.length), block, encode.simple(MsgId.unchoke)])
  const want = ['hs:abab', 'm5:1', 'ka', 'm4:4', 'm6:12', `p2/${BLOCK_LENGTH}:${BLOCK_LENGTH}`, 'm1:0']
  for (const step of [1, 3, 7, 68, 100, 4096, stream.length]) {
    const { h, out } = collect()
    const d = new WireDecoder(h, 13 + BLOCK_LENGTH)
    for (let i = 0; i < stream.length; i += step) d.push(stream.subarray(i, i + step))
    t.same(out, want, `chunks of ${step} bytes`)
  }
})

t.test('wire codec: keeps no view of a chunk, so sockets may read every chunk into one shared buffer', async (t) => {
  const ih = Buffer.alloc(20, 0xab)
  const block = Buffer.from(Array.from({ length: BLOCK_LENGTH }, (_, i) => i % 251))
  const stream = Buffer.concat([encodeHandshake(ih, Buffer.alloc(20, 1)), encode.bitfield(new Uint8Array(40_000).fill(0xff)),
    encode.pieceHeader(2, 0, block.length), block, encode.have(9), encode.pieceHeader(3, BLOCK_LENGTH, block.length), block])
  for (const step of [1, 5, 1448, 4096, 20_000, 65_536]) {
    const shared = Buffer.alloc(step)
    const got: string[] = []
    const d = new WireDecoder({
      onHandshake: (hs) => got.push(`hs:${hs.peerId.toString('hex').slice(0, 4)}`),
      onKeepAlive: () => got.push('ka'),
      onMessage: (id, p) => got.push(`m${id}:${p.length}:${p.every((b) => b === 0xff || id !== MsgId.bitfield) ? 'ok' : 'bad'}`),
      onPiece: (i, b, blk) => got.push(`p${i}/${b}:${blk.equals(block) ? 'ok' : 'bad'}`)
    }, 13 + 40_000)
    for (let i = 0; i < stream.length; i += step) {
      const n = stream.copy(shared, 0, i, i + step)
      d.push(shared.subarray(0, n))
      shared.fill(0x5a) // the next read overwrites the buffer
    }
    t.same(got, ['hs:0101', 'm5:40000:ok', 'p2/0:ok', 'm4:4:ok', `p3/${BLOCK_LENGTH}:ok`], `reads of ${step} bytes into one buffer`)
  }
})

t.test('wire codec: refuses what is not BitTorrent or too large', async (t) => {
  const { h } = collect()
  t.throws(() => { new WireDecoder(h, 100).push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(68, ' '))) }, { code: 'PEER_PROTOCOL' })
  const d = new WireDecoder(h, 100)
  d.push(encodeHandshake(Buffer.alloc(20), Buffer.alloc(20)))
  const huge = Buffer.alloc(4); huge.writeUInt32BE(1 << 30, 0)
  t.throws(() => { d.push(huge) }, { code: 'PEER_PROTOCOL', message: /exceeds the limit/ })
})

t.test('token bucket: limits, and 0 means unlimited', async (t) => {
  const b = new TokenBucket(1000)
  const t0 = Date.now()
  t.equal(b.take(1000, t0), 0)
  t.ok(b.take(500, t0) > 0, 'empty: wait')
  t.equal(b.take(500, t0 + 600), 0, 'refilled after 0.6 s')
  t.equal(new TokenBucket(0).take(1e9), 0)
})

t.test('a real engine seeds to another over TCP; a hostile raw peer is dropped without harm', async (t) => {
  const { Swarm, src, size, hashed, tor, log, opts } = await engineFixture(t, 3 * 1024 * 1024 + 12345)
  const seeder = new Swarm(opts('seed'), log)
  const leecher = new Swarm(opts('leech'), log)
  t.teardown(async () => { await seeder.close(); await leecher.close() })
  // The seeder finds the image where a finished download would be, and hash-checks it.
  await (await import('node:fs/promises')).mkdir(seeder.downloadDir(tor.infoHash), { recursive: true })
  await (await import('node:fs/promises')).copyFile(src, join(seeder.downloadDir(tor.infoHash), 'img.raw'))
  const s = seeder.add(tor.infoHash, tor.bytes, [])
  await s.done
  t.equal(s.counters.resumedBytes, size, 'every piece on disk verified')
  const port = await seeder.listening()

  // A raw socket that handshakes correctly, then sends an absurd message length: dropped.
  const raw: Socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve) => raw.once('connect', () => { resolve() }))
  const closed = new Promise<void>((resolve) => raw.once('close', () => { resolve() }))
  raw.on('error', () => {})
  raw.resume() // read (and drop) the seeder's handshake and bitfield, so that its close is seen
  raw.write(encodeHandshake(Buffer.from(tor.infoHash, 'hex'), Buffer.from('-XX0000-hostilepeer!')))
  const big = Buffer.alloc(4); big.writeUInt32BE(50 * 1024 * 1024, 0)
  raw.write(big)
  await closed
  t.pass('the hostile connection was closed by the seeder')

  const l = leecher.add(tor.infoHash, tor.bytes, [])
  while (!l.ready) await new Promise((resolve) => setTimeout(resolve, 10))
  leecher.addPeer(tor.infoHash, `127.0.0.1:${port}`)
  await l.done
  const got = await readFile(join(leecher.downloadDir(tor.infoHash), 'img.raw'))
  t.equal(createHash('sha512').update(got).digest('hex'), hashed.sha512, 'the leecher has the exact bytes')
  t.equal(await l.sha512(), hashed.sha512, 'and its prefix hasher agrees')
  t.equal(l.counters.bytesFromPeers, size, 'every byte came over the wire once')
  t.ok(s.counters.uploaded >= size, 'the seeder counted its upload')
  const bits = l.picker.have
  t.ok(Array.from({ length: l.picker.count }, (_, i) => hasBit(bits, i)).every(Boolean))
  const probe = new Uint8Array(1); setBit(probe, 0); t.equal(probe[0], 0x80, 'bit 0 is the most significant')
})

t.test('two engines that dial each other at once keep one connection; an origin seeds a verified file in place', async (t) => {
  const { Swarm, src, size, hashed, tor, log, opts } = await engineFixture(t, 2 * 1024 * 1024 + 777)
  const origin = new Swarm(opts('origin', ORIGIN_PEER_ID_PREFIX), log)
  const a = new Swarm(opts('a'), log)
  const b = new Swarm(opts('b'), log)
  t.teardown(async () => { await origin.close(); await a.close(); await b.close() })
  t.equal(origin.peerId.subarray(0, 8).toString('latin1'), ORIGIN_PEER_ID_PREFIX)
  t.notOk(isImgdistPeerId(origin.peerId), 'agents do not take the origin for a fellow agent')
  // As the index server does: the file where it is, read-only, not hash-checked again.
  const o = origin.add(tor.infoHash, tor.bytes, [], { path: src, verified: true })
  await o.done
  t.equal(o.progress, 1)
  t.equal(o.counters.resumedBytes, 0, 'a verified file is not scanned')
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const hb = b.add(tor.infoHash, tor.bytes, [])
  while (!ha.ready || !hb.ready) await new Promise((resolve) => setTimeout(resolve, 10))
  const [pa, pb] = [await a.listening(), await b.listening()]
  // Both learn of each other at the same moment, as from one tracker answer.
  a.addPeer(tor.infoHash, `127.0.0.1:${pb}`)
  b.addPeer(tor.infoHash, `127.0.0.1:${pa}`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(ha.peers.size, 1, 'a has one connection to b')
  t.equal(hb.peers.size, 1, 'b has one connection to a')
  const [ca] = [...ha.peers]
  const [cb] = [...hb.peers]
  t.ok(ca !== undefined && cb !== undefined && ca.socket.localPort === cb.socket.remotePort && ca.socket.remotePort === cb.socket.localPort, 'the same connection at both ends')
  const originPort = await origin.listening()
  a.addPeer(tor.infoHash, `127.0.0.1:${originPort}`)
  b.addPeer(tor.infoHash, `127.0.0.1:${originPort}`)
  await Promise.all([ha.done, hb.done])
  t.equal(await ha.sha512(), hashed.sha512, 'a has the exact bytes')
  t.equal(await hb.sha512(), hashed.sha512, 'b has the exact bytes')
  t.ok(o.counters.uploaded >= size, 'the origin seeded from the file in place')
})

const ownIPv4 = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address
if (ownIPv4 === undefined) t.comment('SKIPPING the own-address dial test: this machine has no non-loopback IPv4 address')
t.test('a tracker answer that lists the engine at its own interface address does not make it dial itself', { skip: ownIPv4 === undefined ? 'no non-loopback IPv4 address' : false }, async (t) => {
  const own = ownIPv4 as string
  const { Swarm, tor, opts } = await engineFixture(t, 256 * 1024)
  const lines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(line) } })
  const a = new Swarm(opts('a'), log)
  const b = new Swarm(opts('b'), log)
  t.teardown(async () => { await a.close(); await b.close() })
  const ha = a.add(tor.infoHash, tor.bytes, [])
  const hb = b.add(tor.infoHash, tor.bytes, [])
  while (!ha.ready || !hb.ready) await new Promise((resolve) => setTimeout(resolve, 10))
  const [pa, pb] = [await a.listening(), await b.listening()]
  a.addPeer(tor.infoHash, `${own}:${pa}`) // a itself
  a.addPeer(tor.infoHash, `${own}:${pb}`) // b, at the same address: dialled
  for (let i = 0; i < 200 && hb.peers.size === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(ha.peers.size, 1, `a connected to b at ${own}`)
  t.same(lines.filter((l) => l.includes('could not connect')), [], 'and made no connection attempt to itself')
})

t.test('an address that reaches the engine itself without being its own (hairpin NAT) is banned after one dial', async (t) => {
  // 127.0.0.2 ends in our own listener, but no interface lists it: the interface check cannot
  // know, only the handshake can.
  const { Swarm, tor, opts } = await engineFixture(t, 256 * 1024)
  const lines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(line) } })
  const a = new Swarm(opts('a'), log)
  t.teardown(async () => { await a.close() })
  const ha = a.add(tor.infoHash, tor.bytes, [])
  while (!ha.ready) await new Promise((resolve) => setTimeout(resolve, 10))
  const addr = `127.0.0.2:${await a.listening()}`
  a.addPeer(tor.infoHash, addr)
  for (let i = 0; i < 200 && !ha.banned.has(addr); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(ha.banned.has(addr), `${addr} is banned`)
  t.ok(lines.some((l) => l.includes('connected to ourselves')), 'because its handshake carried our own peer id')
  t.same(lines.filter((l) => l.includes('could not connect')), [], 'not left to be retried as a failed dial')
  t.equal(ha.peers.size, 0, 'and no peer was attached')
})

t.test('bitfield helpers: clearBit, and the spare bits after the last piece', async (t) => {
  const bits = new Uint8Array(2).fill(0xff)
  clearBit(bits, 0)
  clearBit(bits, 9)
  t.same([...bits], [0x7f, 0xbf], 'most significant bit first, as hasBit and setBit')
  t.notOk(hasBit(bits, 9))
  setBit(bits, 9)
  clearSpareBits(bits, 11)
  t.same([...bits], [0x7f, 0xe0], 'the five bits after piece 10 cleared')
  clearSpareBits(bits, 16)
  t.same([...bits], [0x7f, 0xe0], 'none to clear when the pieces fill the bytes')
})
