import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import t from 'tap'
import { originTestbed } from './helpers/agent-origin.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'
import { agentAsOnlySeed, agentFetchesFromForeign, agentUploaded, foreignProcs, seedDirWith, torrentFile, type Foreign } from './helpers/foreign-client.js'
import { freePort } from './helpers/free-port.js'

// Debian's python3-libtorrent is built for the system python, not for whatever `python3` is first on PATH
const PYTHON = '/usr/bin/python3'
const LT_PEER = resolve('test/helpers/lt-peer.py')
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex')

function libtorrentMissing (): string | false {
  if (spawnSync(PYTHON, ['-c', 'import libtorrent'], { stdio: 'ignore' }).status === 0) return false
  return `libtorrent is not importable by ${PYTHON} (apt-get install python3-libtorrent): interop not tested`
}

t.test('interop with libtorrent-rasterbar', { skip: libtorrentMissing() }, async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-libtorrent-')
  const { agents, startAgent } = agentFleet(t)
  const foreign = foreignProcs(t)
  const ltPeer = async (mode: 'seed' | 'get', torrentPath: string, into: string): Promise<Foreign> =>
    foreign.spawn(PYTHON, [LT_PEER, mode, torrentPath, into, String(await freePort())])

  await t.test('an agent downloads an image only a libtorrent seeder has', async (t) => {
    const e = await fx.addImage('from-libtorrent', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const lt = await ltPeer('seed', await torrentFile(fx, e, dir), await seedDirWith(fx, e, join(dir, 'lt-seed')))
    await waitFor('libtorrent announced as a seed', async () => (origin.tracker.torrents[e.infoHash]?.complete ?? 0) >= 1, 60_000)
      .catch((err) => { t.comment(lt.tail()); throw err })
    await agentFetchesFromForeign(t, { who: 'libtorrent', fx, origin, e, start: startAgent, dir, site: 'site-1', dump: () => { t.comment(lt.tail()) } })
  })

  await t.test('a libtorrent leecher downloads an image only an agent seeds', async (t) => {
    const e = await fx.addImage('to-libtorrent', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const a = await agentAsOnlySeed(fx, origin, e, startAgent, dir, 'site-2')
    const outDir = join(dir, 'lt-out')
    await mkdir(outDir, { recursive: true })
    const lt = await ltPeer('get', await torrentFile(fx, e, dir), outDir)
    // lt-peer.py says DONE once libtorrent has checked the sha1 of every piece; it then keeps seeding
    await waitFor('libtorrent has the whole image', async () => lt.logs.join('').includes('DONE\n') || lt.proc.exitCode !== null, 60_000)
      .catch((err) => { t.comment(lt.tail()); t.comment(a.logs.slice(-30).join('\n')); throw err })
    t.equal(lt.proc.exitCode, null, `libtorrent did not exit (${lt.tail(500)})`)
    t.equal(sha512(await readFile(join(outDir, e.id))), e.sha512, 'libtorrent got the endorsed bytes')
    t.ok(await agentUploaded(agents, e.id), 'an agent uploaded')
  })
})
