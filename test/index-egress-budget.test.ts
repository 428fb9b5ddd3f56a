import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { engineFixture } from './helpers/engine-fixture.js'
import { body, indexBytes, makeServerDir, waitFor } from './index-fixture.js'

// The index server's egress budget (seeding.egressBudget, swarm/egress-budget.ts) for a site that
// joins after another finished: the finished engine has closed its connection to the origin (two
// seeds have nothing to trade), so only the origin's tracker knows it holds the image. Real
// index server, real tracker, two real engines (dist/) on loopback, no web seed.

const PIECE = 256 * 1024
const SIZE = 16 * PIECE

async function lateJoiner (t: Test, egressBudget: number): Promise<{ uploaded: number, rejected: number, fromPeers: number }> {
  const { dataDir, fx } = await makeServerDir(t)
  const entry = await fx.addImage('img-late', SIZE, { pieceLength: PIECE })
  const base = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort: 0, dht: false })
  const daemon = await startIndexDaemon({ ...base, torrents: { ...base.torrents, injectWebSeed: false }, seeding: { ...base.seeding, utp: false, egressBudget } }, { logger: false })
  t.teardown(async () => await daemon.close())
  const url = daemon.url
  const put = async (path: string, type: string, data: Uint8Array): Promise<number> => (await fetch(url + path, { method: 'PUT', headers: { 'content-type': type }, body: body(data) })).status
  t.equal(await put('/v1/index.yaml', 'application/yaml', await indexBytes(fx)), 200)
  t.equal(await put(`/v1/torrents/${entry.infoHash}.torrent`, 'application/x-bittorrent', fx.torrents.get('img-late') as Uint8Array), 200)
  t.equal(await put('/v1/images/img-late', 'application/octet-stream', await readFile(fx.images.get('img-late') as string)), 200)
  await waitFor('the origin to seed img-late', () => (daemon.seeder?.seeding().length ?? 0) >= 1 ? true : undefined)
  const torrent = new Uint8Array(await (await fetch(`${url}/v1/torrents/${entry.infoHash}.torrent`)).arrayBuffer())

  // Engines with no peer of their own: they find the origin, and each other, through the
  // tracker in the served torrent.
  const { Swarm, opts, log } = await engineFixture(t, 1)
  const first = new Swarm(opts('first'), log)
  t.teardown(async () => { await first.close() })
  await first.add(entry.infoHash, torrent, []).done
  await waitFor('the finished site to leave the origin', () => daemon.seeder?.stats()?.peers === 0 ? true : undefined)
  const late = new Swarm(opts('late'), log)
  t.teardown(async () => { await late.close() })
  const h = late.add(entry.infoHash, torrent, [])
  await h.done
  const got = await readFile(join(late.downloadDir(entry.infoHash), 'img-late'))
  t.equal(createHash('sha512').update(got).digest('hex'), entry.sha512, 'the late site has the image')
  const stats = daemon.seeder?.stats()
  return { uploaded: stats?.uploaded ?? NaN, rejected: stats?.rejected ?? NaN, fromPeers: h.counters.bytesFromPeers }
}

t.test('past its budget, the origin leaves a late site to a seed that only its tracker knows of', async (t) => {
  const free = await lateJoiner(t, 0)
  t.ok(free.uploaded > 1.2 * SIZE, `without a budget the origin sends the late site much of a second copy (${(free.uploaded / SIZE).toFixed(2)} F)`)
  const held = await lateJoiner(t, 1)
  t.ok(held.uploaded <= 1.1 * SIZE, `with a budget of 1 copy it sends about one in all (${(held.uploaded / SIZE).toFixed(2)} F)`)
  t.ok(held.rejected > 0, `it rejected the late site's requests (${held.rejected} blocks)`)
  t.equal(held.fromPeers, SIZE, 'and the late site got every byte over BitTorrent (from the finished site)')
})
