import { copyFile, mkdir } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Client as DHT } from 'bittorrent-dht'
import { pino, type Logger } from 'pino'
import t from 'tap'
import { OUR_PEX_ID, encodePex } from '../lib/peer-extension.js'
import { Candidates, MAX_CANDIDATES, MAX_GOSSIP_FAILURES, MAX_GOSSIP_PER_HOST } from '../swarm/candidates.js'
import { MAX_PENDING_HANDSHAKES } from '../swarm/handshake-deadline.js'
import { PEX_INTAKE_INTERVAL_MS, PEX_MAX_TAKEN_PER_CONN, takePex } from '../swarm/pex-intake.js'
import { waitFor } from './helpers/agent-proc.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { rawPeer } from './helpers/raw-peer.js'

/**
 * What a peer, a DHT node or a slow socket can make the engine hold: connections that never
 * handshake (an absolute deadline, and at most MAX_PENDING_HANDSHAKES waiting), and addresses
 * to dial (a bounded table that gossip cannot fill for good, at most a few ports per host from
 * gossip, one ut_pex a minute per connection). Engines are real, on loopback.
 */

/** A logger that records the addresses the engine dials (its "dialling" debug lines, in order) and, at trace level, counts the ut_pex messages it read. */
function dialLog (level: 'debug' | 'trace' = 'debug'): { log: Logger, dialled: Set<string>, pexRead: () => number } {
  const dialled = new Set<string>()
  let pex = 0
  const sink = new Writable({
    write (c, _e, cb) {
      for (const line of String(c).split('\n')) {
        if (line.includes('"dialling"')) dialled.add((JSON.parse(line) as { peer: string }).peer)
        else if (line.includes('"peer exchange"')) pex++
      }
      cb()
    }
  })
  return { log: pino({ level }, sink) as Logger, dialled, pexRead: () => pex }
}

/** bittorrent-dht's listen(port, address, cb), which its types leave out */
interface Listen { listen: (port: number, address: string, cb: () => void) => void }

const HANDSHAKE = Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(48)])

t.test('candidate table: gossip gets a few ports per host, trackers and the operator what they say', async (t) => {
  const c = new Candidates(() => false)
  for (let p = 1; p <= 10; p++) c.add(`10.0.0.1:${p}`, 'dht')
  t.equal(c.size, MAX_GOSSIP_PER_HOST, 'gossip: at most 4 ports of one host')
  t.ok(c.add('10.0.0.1:6881', 'tracker'), 'a tracker may name a fifth')
  t.ok(c.add('10.0.0.1:6882', 'manual'), 'and the operator a sixth')
  t.notOk(c.add('10.0.0.2:1', 'pex') && c.add('10.0.0.1:7', 'pex'), 'the host stays full for gossip')
  // made-up ports named for a real host cannot keep its real port out once they fail
  c.failed('10.0.0.1:1', 0)
  t.notOk(c.add('10.0.0.1:51413', 'pex'), 'not at its first failure: a stream of ports is not dialled as fast as they fail')
  c.failed('10.0.0.1:1', 0)
  t.ok(c.add('10.0.0.1:51413', 'pex'), 'a gossiped port replaces a failed gossiped port of that host')
  t.notOk(c.has('10.0.0.1:1'), 'the failed one is gone')
  t.ok(c.has('10.0.0.1:6881') && c.has('10.0.0.1:6882'), 'trusted ones stay')
})

t.test('candidate table: full of gossip, a newcomer replaces the least useful; gossip never replaces trusted or busy', async (t) => {
  const busy = new Set<string>()
  const c = new Candidates((a) => busy.has(a))
  const addr = (i: number): string => `10.${i >> 8}.${i & 255}.1:6881`
  for (let i = 0; i < MAX_CANDIDATES; i++) t.ok(c.add(addr(i), 'pex') || true)
  t.equal(c.size, MAX_CANDIDATES)
  c.failed(addr(7), 0); c.failed(addr(7), 0); c.failed(addr(9), 0)
  t.ok(c.add('192.168.0.1:1', 'pex'), 'gossip gets in when the table is full')
  t.equal(c.size, MAX_CANDIDATES)
  t.notOk(c.has(addr(7)), 'in place of the address that failed most')
  t.ok(c.add('192.168.0.2:1', 'dht'))
  t.notOk(c.has(addr(9)), 'then the next failed one')
  t.ok(c.add('192.168.0.3:1', 'lsd'))
  t.notOk(c.has(addr(0)), 'then the oldest never tried')
  c.reached(addr(1))
  t.ok(c.add('192.168.0.4:1', 'pex'))
  t.ok(c.has(addr(1)), 'one that was reached is kept over one never tried')
  t.notOk(c.has(addr(2)))

  const full = new Candidates((a) => busy.has(a))
  for (let i = 0; i < MAX_CANDIDATES; i++) full.add(addr(i), 'tracker')
  t.notOk(full.add('192.168.0.1:1', 'pex'), 'gossip never replaces what a tracker said')
  full.failed(addr(3), 0)
  t.notOk(full.add('192.168.0.1:1', 'pex'), 'not even a failed one')
  t.ok(full.add('192.168.0.1:2', 'manual'), 'the operator replaces a tracker address that failed')
  t.notOk(full.has(addr(3)))
  t.notOk(full.add('192.168.0.1:3', 'manual'), 'but not one that did not fail')

  const busyOnly = new Candidates((a) => busy.has(a))
  for (let i = 0; i < MAX_CANDIDATES; i++) { busyOnly.add(addr(i), 'pex'); busy.add(addr(i)) }
  t.notOk(busyOnly.add('192.168.0.1:1', 'tracker'), 'connected or dialling addresses are never replaced')
})

t.test('candidate table: gossip that keeps failing is forgotten, a trusted address is not', async (t) => {
  const c = new Candidates(() => false)
  c.add('10.0.0.1:1', 'pex')
  c.add('10.0.0.2:1', 'tracker')
  c.add('10.0.0.3:1', 'dht')
  c.add('10.0.0.3:1', 'manual') // named by the operator too: trusted from now on
  for (let i = 0; i < MAX_GOSSIP_FAILURES; i++) { c.failed('10.0.0.1:1', 0); c.failed('10.0.0.2:1', 0); c.failed('10.0.0.3:1', 0) }
  t.notOk(c.has('10.0.0.1:1'), 'gossip forgotten')
  t.ok(c.has('10.0.0.2:1'), 'a tracker address kept')
  t.ok(c.has('10.0.0.3:1'), 'a gossiped address the operator also named kept')
  t.equal(c.get('10.0.0.3:1')?.source, 'dht', 'shown under the source that named it first')
})

t.test('PEX intake: one message per connection per interval, a bounded number of addresses per connection', async (t) => {
  const conn = {}
  const msg = (n: number, base: number): Array<{ host: string, port: number, flags: number }> => Array.from({ length: n }, (_, k) => ({ host: '10.0.0.1', port: base + k, flags: 0 }))
  t.equal(takePex(conn, msg(50, 1), 1000).length, 50, 'the first message is taken')
  t.equal(takePex(conn, msg(50, 100), 1001).length, 0, 'a second at once is ignored')
  t.equal(takePex(conn, msg(50, 100), 1000 + PEX_INTAKE_INTERVAL_MS - 1).length, 0, 'still too soon')
  t.equal(takePex({}, msg(50, 100), 1001).length, 50, 'another connection has its own interval')
  let total = 50
  for (let i = 1; i < 10; i++) total += takePex(conn, msg(50, 100 * i), 1000 + i * PEX_INTAKE_INTERVAL_MS).length
  t.equal(total, PEX_MAX_TAKEN_PER_CONN, 'at most PEX_MAX_TAKEN_PER_CONN addresses over a connection')
})

t.test('an incoming connection that trickles its handshake is closed at the deadline', async (t) => {
  const { Swarm, tor, log, opts } = await engineFixture(t, 64 * 1024)
  const sw = new Swarm({ ...opts('x'), handshakeTimeoutMs: 1000 }, log)
  t.teardown(async () => { await sw.close() })
  sw.add(tor.infoHash, tor.bytes, [])
  const sock = connect({ host: '127.0.0.1', port: await sw.listening() })
  sock.on('error', () => {})
  sock.resume()
  const closed = new Promise<void>((resolve) => { sock.once('close', () => { resolve() }) })
  // one byte every 100 ms: an idle timeout of 1 s never fires, and the whole handshake takes 6.8 s
  let sent = 0
  const iv = setInterval(() => { if (sent < HANDSHAKE.length) sock.write(HANDSHAKE.subarray(sent, ++sent)) }, 100)
  t.teardown(() => { clearInterval(iv); sock.destroy() })
  await closed
  t.ok(sent < HANDSHAKE.length, `closed before the handshake was complete (${sent} of ${HANDSHAKE.length} bytes sent)`)
})

t.test('a dialled peer that trickles its handshake is closed at the deadline', async (t) => {
  const { Swarm, tor, log, opts } = await engineFixture(t, 64 * 1024)
  const sw = new Swarm({ ...opts('x'), handshakeTimeoutMs: 1000 }, log)
  t.teardown(async () => { await sw.close() })
  const h = sw.add(tor.infoHash, tor.bytes, [])
  await waitFor('torrent ready', async () => h.ready)
  let sent = 0
  let ended: (() => void) | undefined
  const closed = new Promise<void>((resolve) => { ended = resolve })
  const server = createServer((s) => {
    s.on('error', () => {})
    s.resume() // read what the engine sends, so that its close is seen whether or not we are writing
    const iv = setInterval(() => { if (sent < HANDSHAKE.length) s.write(HANDSHAKE.subarray(sent, ++sent)) }, 100)
    s.once('close', () => { clearInterval(iv); ended?.() })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.close() })
  sw.addPeer(tor.infoHash, `127.0.0.1:${(server.address() as { port: number }).port}`)
  await closed
  t.ok(sent < HANDSHAKE.length, `closed before the handshake was complete (${sent} of ${HANDSHAKE.length} bytes sent)`)
})

t.test('connections waiting for a handshake are capped: the oldest make room, and an honest peer still gets in', async (t) => {
  const { Swarm, src, tor, log, opts } = await engineFixture(t, 256 * 1024)
  // a deadline far off: every close seen here is the cap's
  const seed = new Swarm({ ...opts('seed'), handshakeTimeoutMs: 120_000 }, log)
  const leech = new Swarm(opts('leech'), log)
  t.teardown(async () => { await leech.close(); await seed.close() })
  await mkdir(seed.downloadDir(tor.infoHash), { recursive: true })
  await copyFile(src, join(seed.downloadDir(tor.infoHash), 'img.raw'))
  await seed.add(tor.infoHash, tor.bytes, []).done
  const port = await seed.listening()
  const extra = 8
  const silent: Array<{ sock: Socket, closed: boolean }> = []
  t.teardown(() => { for (const s of silent) s.sock.destroy() })
  for (let i = 0; i < MAX_PENDING_HANDSHAKES + extra; i++) {
    const sock = connect({ host: '127.0.0.1', port })
    const s = { sock, closed: false }
    sock.on('error', () => {})
    sock.once('close', () => { s.closed = true })
    await new Promise<void>((resolve) => { sock.once('connect', () => { resolve() }) })
    silent.push(s)
  }
  await waitFor('the engine to close the connections past the cap', async () => silent.filter((s) => s.closed).length >= extra || undefined, 10_000)
  t.same(silent.map((s, i) => s.closed ? i : -1).filter((i) => i >= 0), [...Array(extra).keys()], 'the oldest ones were closed, and no more')
  const l = leech.add(tor.infoHash, tor.bytes, [])
  await waitFor('leecher ready', async () => l.ready)
  leech.addPeer(tor.infoHash, `127.0.0.1:${port}`)
  await waitFor('the download', async () => l.progress === 1 || undefined, 30_000)
  t.pass('the honest downloader got in and completed')
  t.ok(silent.filter((s) => !s.closed).length >= MAX_PENDING_HANDSHAKES - 1, 'while the silent connections were only closed to make room')
})

/** A seed of the fixture's torrent, complete; its listening port. */
async function startSeed (Swarm: Awaited<ReturnType<typeof engineFixture>>['Swarm'], f: Awaited<ReturnType<typeof engineFixture>>, t: { teardown: (fn: () => Promise<void>) => void }): Promise<number> {
  const seed = new Swarm(f.opts('seed'), f.log)
  t.teardown(async () => { await seed.close() })
  await mkdir(seed.downloadDir(f.tor.infoHash), { recursive: true })
  await copyFile(f.src, join(seed.downloadDir(f.tor.infoHash), 'img.raw'))
  await seed.add(f.tor.infoHash, f.tor.bytes, []).done
  return await seed.listening()
}

/** 50 addresses on distinct hosts that refuse connections (nothing listens on port 9 of 127.1.x.y). */
const deadAddrs = (m: number): Array<{ host: string, port: number, flags: number }> => Array.from({ length: 50 }, (_, k) => ({ host: `127.1.${m}.${k + 1}`, port: 9, flags: 0 }))

/** A seed, and a downloader (the one under test) with a dial log, ready and knowing no peers. */
async function seedAndDialLogLeecher (t: { teardown: (fn: () => Promise<void>) => void }, level: 'debug' | 'trace' = 'debug', extra: { handshakeTimeoutMs?: number } = {}) {
  const f = await engineFixture(t, 256 * 1024)
  const seedPort = await startSeed(f.Swarm, f, t)
  const { log, dialled, pexRead } = dialLog(level)
  const leech = new f.Swarm({ ...f.opts('leech'), ...extra }, log)
  t.teardown(async () => { await leech.close() })
  const l = leech.add(f.tor.infoHash, f.tor.bytes, [])
  await waitFor('leecher ready', async () => l.ready)
  return { f, seedPort, dialled, pexRead, l, port: await leech.listening() }
}

t.test('a burst of ut_pex from one connection: only the first message is taken; an address heard later from another peer is dialled', async (t) => {
  const { f, seedPort, dialled, l, port } = await seedAndDialLogLeecher(t)
  const a = await rawPeer(port, f.tor.infoHash)
  t.teardown(() => { a.sock.destroy() })
  for (let m = 0; m < 20; m++) a.send(encodePex(OUR_PEX_ID, deadAddrs(m), []).bytes)
  a.send(encodePex(OUR_PEX_ID, [{ host: '127.0.0.1', port: seedPort, flags: 0x12 }], []).bytes)
  // a second peer's message shows when the burst, sent before it, has been read
  const b = await rawPeer(port, f.tor.infoHash)
  t.teardown(() => { b.sock.destroy() })
  b.send(encodePex(OUR_PEX_ID, [{ host: '127.0.0.1', port: seedPort, flags: 0x12 }], []).bytes)
  await waitFor('the download', async () => l.progress === 1 || undefined, 30_000)
  t.pass('the seed named by the other peer was dialled and the download completed')
  await waitFor('the first message\'s 50 addresses to be dialled', async () => [...dialled].filter((d) => d.startsWith('127.1.0.')).length === 50 || undefined, 30_000)
  // one namer's addresses are dialled in the order they came (candidates.ts due()), so the rest of the burst would be dialled by now if it had been taken
  t.equal([...dialled].filter((d) => d.startsWith('127.1.') && !d.startsWith('127.1.0.')).length, 0, 'none of the 19 messages after it')
})

t.test('gossip from many connections fills the table; a real peer heard of later still gets in', async (t) => {
  const { f, seedPort, dialled, l, port } = await seedAndDialLogLeecher(t)
  // one connection after another, each allowed its one message: 1050 dead addresses in all
  for (let m = 0; m < MAX_CANDIDATES / 50 + 1; m++) {
    const a = await rawPeer(port, f.tor.infoHash)
    a.send(encodePex(OUR_PEX_ID, deadAddrs(m), []).bytes)
    await waitFor('the message to be read', async () => dialled.has(`127.1.${m}.1:9`) || undefined, 10_000).catch(() => {})
    a.sock.destroy()
    await a.closed
  }
  const last = await rawPeer(port, f.tor.infoHash)
  t.teardown(() => { last.sock.destroy() })
  last.send(encodePex(OUR_PEX_ID, [{ host: '127.0.0.1', port: seedPort, flags: 0x12 }], []).bytes)
  await waitFor('the download', async () => l.progress === 1 || undefined, 30_000)
  t.pass('the seed named after the table filled was dialled and the download completed')
})

t.test('addresses from a few peers that lead to a tarpit do not keep a real peer, named later by another, waiting behind them all', async (t) => {
  // accepts on every 127.x.y.z and never answers: each dial there holds a slot until the handshake deadline
  const tarpit = createServer((s) => { s.on('error', () => {}); s.resume() })
  await new Promise<void>((resolve) => { tarpit.listen(0, '0.0.0.0', resolve) })
  t.teardown(() => { tarpit.close() })
  const tp = (tarpit.address() as { port: number }).port
  const { f, seedPort, dialled, pexRead, l, port } = await seedAndDialLogLeecher(t, 'trace', { handshakeTimeoutMs: 1000 })
  const gossipers = 5
  for (let m = 0; m < gossipers; m++) {
    const a = await rawPeer(port, f.tor.infoHash)
    t.teardown(() => { a.sock.destroy() })
    a.send(encodePex(OUR_PEX_ID, Array.from({ length: 50 }, (_, k) => ({ host: `127.3.${m}.${k + 1}`, port: tp, flags: 0 })), []).bytes)
  }
  await waitFor('the tarpit addresses to be read', async () => pexRead() >= gossipers || undefined, 10_000)
  const honest = await rawPeer(port, f.tor.infoHash)
  t.teardown(() => { honest.sock.destroy() })
  honest.send(encodePex(OUR_PEX_ID, [{ host: '127.0.0.1', port: seedPort, flags: 0x12 }], []).bytes)
  const seed = `127.0.0.1:${seedPort}`
  await waitFor('the seed to be dialled', async () => dialled.has(seed) || undefined, 60_000)
  const before = [...dialled].indexOf(seed)
  t.comment(`${before} tarpit addresses were dialled before the seed (of ${gossipers * 50})`)
  t.ok(before < gossipers * 50 / 2, 'the seed was dialled before most of the tarpit addresses')
  await waitFor('the download', async () => l.progress === 1 || undefined, 30_000)
  t.pass('the download completed from the seed')
})

t.test('candidate table: due() puts trusted and reached first, fewer failures first, and lets each namer take turns', async (t) => {
  const c = new Candidates(() => false)
  for (let k = 1; k <= 3; k++) c.add(`10.0.1.${k}:1`, 'pex', 'peerA')
  c.add('10.0.2.1:1', 'pex', 'peerB')
  c.add('10.0.3.1:1', 'dht')
  c.add('10.0.4.1:1', 'tracker')
  c.add('10.0.5.1:1', 'pex', 'peerB')
  c.reached('10.0.5.1:1')
  c.add('10.0.6.1:1', 'pex', 'peerB')
  c.failed('10.0.6.1:1', 0)
  t.same(c.due(0), ['10.0.4.1:1', '10.0.5.1:1', '10.0.1.1:1', '10.0.2.1:1', '10.0.3.1:1', '10.0.1.2:1', '10.0.1.3:1'], 'trusted, reached, then one of each namer in turn; the failed one is not due')
  t.equal(c.due(Number.MAX_SAFE_INTEGER).at(-1), '10.0.6.1:1', 'once due, the failed one comes last')
})

t.test('DHT: one host announcing many ports, or a get_peers answer listing them, gets a few dialled', async (t) => {
  const f = await engineFixture(t, 64 * 1024)
  const { log, dialled } = dialLog()
  // the bootstrap node holds 100 ports of one host for the torrent, and one real peer (a listener)
  const boot = new DHT({ bootstrap: false })
  await new Promise<void>((resolve) => { (boot as unknown as Listen).listen(0, '127.0.0.1', () => { resolve() }) })
  t.teardown(() => { boot.destroy() })
  const ih = Buffer.from(f.tor.infoHash, 'hex')
  const target = createServer((s) => { s.destroy() })
  await new Promise<void>((resolve) => { target.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { target.close() })
  const targetPort = (target.address() as { port: number }).port
  type Internal = { _addPeer: (peer: { host: string, port: number }, infoHash: Buffer, from: { host: string, port: number }) => void, _rpc: { query: (node: { host: string, port: number }, q: unknown, cb: (err: Error | null, res: { r: { token: Buffer } }) => void) => void }, nodeId: Buffer }
  const b = boot as unknown as Internal
  for (let p = 1; p <= 60; p++) b._addPeer({ host: '127.2.0.1', port: 20000 + p }, ih, { host: '127.2.0.1', port: 1 })
  b._addPeer({ host: '127.0.0.1', port: targetPort }, ih, { host: '127.0.0.1', port: 1 })
  const bootPort = (boot.address() as { port: number }).port
  const sw = new f.Swarm({ ...f.opts('x'), dht: { enabled: true, bootstrap: [`127.0.0.1:${bootPort}`] } }, log)
  t.teardown(async () => { await sw.close() })
  const h = sw.add(f.tor.infoHash, f.tor.bytes, [])
  await waitFor('torrent ready', async () => h.ready)
  await waitFor('the real peer of the get_peers answer to be dialled', async () => dialled.has(`127.0.0.1:${targetPort}`) || undefined)
  t.equal([...dialled].filter((d) => d.startsWith('127.2.0.1:')).length, MAX_GOSSIP_PER_HOST, 'of the 60 ports of one host in the answer, 4 dialled')

  // announce_peer: a node with one valid token announces 300 ports of its own host
  const atk = new DHT({ bootstrap: false })
  await new Promise<void>((resolve) => { (atk as unknown as Listen).listen(0, '127.0.0.3', () => { resolve() }) })
  t.teardown(() => { atk.destroy() })
  const a = atk as unknown as Internal
  const dhtPort = await waitFor('the DHT port', async () => sw.dht?.port)
  const node = { host: '127.0.0.1', port: dhtPort }
  const token = await new Promise<Buffer>((resolve, reject) => { a._rpc.query(node, { q: 'get_peers', a: { id: a.nodeId, info_hash: ih } }, (err, res) => { if (err !== null) reject(err); else resolve(res.r.token) }) })
  let answered = 0
  for (let p = 1; p <= 300; p++) a._rpc.query(node, { q: 'announce_peer', a: { id: a.nodeId, info_hash: ih, port: 30000 + p, token } }, () => { answered++ })
  await waitFor('every announce to be answered', async () => answered === 300 || undefined)
  t.equal([...dialled].filter((d) => d.startsWith('127.0.0.3:')).length, MAX_GOSSIP_PER_HOST, 'of the 300 announced ports, 4 dialled')
})
