import { spawnSync } from 'node:child_process'
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import t from 'tap'
import { formatPeers } from '../agent/format.js'
import { waitFor } from './helpers/agent-proc.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { foreignProcs, type Foreign } from './helpers/foreign-client.js'
import { freePort } from './helpers/free-port.js'

/**
 * Peer exchange with libtorrent-rasterbar, both ways, with no tracker, DHT or LSD anywhere: the
 * only way the two engines named below can meet is a ut_pex message from the third. The engines
 * are the built dist/ Swarm, as the agent runs it.
 */

// Debian's python3-libtorrent is built for the system python, not for whatever `python3` is first on PATH
const PYTHON = '/usr/bin/python3'
const LT_PEER = resolve('test/helpers/lt-peer.py')
/** libtorrent's peer_info.source bit for a peer learnt from peer exchange */
const LT_SOURCE_PEX = 4

function libtorrentMissing (): string | false {
  if (spawnSync(PYTHON, ['-c', 'import libtorrent'], { stdio: 'ignore' }).status === 0) return false
  return `libtorrent is not importable by ${PYTHON} (apt-get install python3-libtorrent): PEX interop not tested`
}
const skip = libtorrentMissing()
if (skip !== false) t.comment(`SKIPPED: ${skip}`)

t.test('peer exchange with libtorrent', { skip }, async (t) => {
  const fx = await engineFixture(t, 2 * 1024 * 1024 + 17)
  const { Swarm, src, tor, log, opts, dir } = fx
  const torrentPath = join(dir, 'img.torrent')
  await writeFile(torrentPath, tor.bytes)
  const foreign = foreignProcs(t)
  const lt = async (mode: 'seed' | 'get', into: string, uploadLimit: number, dial: string[]): Promise<{ f: Foreign, port: number }> => {
    await mkdir(into, { recursive: true })
    const port = await freePort()
    return { f: foreign.spawn(PYTHON, [LT_PEER, mode, torrentPath, into, String(port), String(uploadLimit), ...dial]), port }
  }

  await t.test('two engines that know only a libtorrent seed meet through its PEX', async (t) => {
    const { a, b, ha, hb, addrs } = await fx.twoDownloaders()
    // The seed dials both (so it knows their listening ports) and sends slowly, so that they are
    // still downloading when its first ut_pex arrives (libtorrent sends one about a second after
    // the extension handshake, then at most one a minute).
    const seedDir = join(dir, 'lt-seed')
    await mkdir(seedDir, { recursive: true })
    await copyFile(src, join(seedDir, 'img.raw'))
    const seed = await lt('seed', seedDir, 128 * 1024, addrs)
    const met = await waitFor('an engine to dial the other, told by libtorrent', async () =>
      [...a.peers(), ...b.peers()].find((p) => p.found === 'pex'), 90_000)
      .catch((err) => { t.comment(seed.f.tail()); throw err })
    t.ok(addrs.includes(met.address), `dialled at the other's listening port (${met.address})`)
    const ltPeer = a.peers().find((p) => p.found === 'incoming' && p.client !== undefined)
    t.match(ltPeer?.client, /libtorrent|LT/i, `libtorrent's extended handshake names it (${ltPeer?.client ?? 'none'})`)
    t.same(ltPeer?.extensions, ['BEP 6', 'BEP 10'], 'the connection speaks the fast extension and the extension protocol')
    t.match(formatPeers(a.peers()), new RegExp(`${ltPeer?.address ?? 'none'} +\\S+ +incoming +.+ +BEP 6,BEP 10 `), '`imgdist-agent peers` shows them (EXTENSIONS)')
    await Promise.all([ha.done, hb.done])
    t.pass('both complete')
  })

  await t.test('a libtorrent downloader that knows only an engine seed meets the other engine through its PEX', async (t) => {
    const seed = new Swarm({ ...opts('seed2'), uploadLimit: 128 * 1024 }, log)
    const other = new Swarm({ ...opts('other'), uploadLimit: 128 * 1024 }, log)
    t.teardown(async () => { await seed.close(); await other.close() })
    seed.add(tor.infoHash, tor.bytes, [], { path: src, verified: true })
    const ho = other.add(tor.infoHash, tor.bytes, [])
    const seedPort = await seed.listening()
    const otherPort = await other.listening()
    await waitFor('torrent ready', async () => ho.ready)
    other.addPeer(tor.infoHash, `127.0.0.1:${seedPort}`) // the seed learns other's listening port from its extended handshake
    await waitFor('the other engine connected to the seed', async () => seed.peers().length === 1 || undefined)
    const leech = await lt('get', join(dir, 'lt-get'), 0, [`127.0.0.1:${seedPort}`])
    const line = await waitFor('libtorrent to connect to the other engine, told by the seed\'s PEX', async () =>
      leech.f.logs.join('').split('\n').find((l) => l.startsWith(`PEER 127.0.0.1:${otherPort} `)), 30_000)
      .catch((err) => { t.comment(leech.f.tail()); throw err })
    const sources = Number(line.split(' ')[2])
    t.ok((sources & LT_SOURCE_PEX) !== 0, `libtorrent lists the other engine as learnt by PEX (source bits ${sources})`)
    t.equal(seed.peers().find((p) => p.client !== undefined && p.client !== 'imgdist 0.1')?.found, 'incoming', 'the seed saw libtorrent dial in')
  })
})
