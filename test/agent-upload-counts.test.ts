import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { openDb } from '../agent/db.js'
import { Reconciler } from '../agent/reconciler.js'
import { newRecord, StateStore } from '../agent/state-store.js'
import { Swarm, type SwarmOptions } from '../swarm/swarm.js'
import { makeFixture } from './helpers/catalogue-fixture.js'

/**
 * The byte counts an agent keeps per image, as they stand after a clean stop. The pieces are the
 * agent's own (reconciler, swarm, LevelDB), closed in the order ImgdistAgent.close() closes them.
 */

t.test('a stop right after a peer took a seeded image saves every byte uploaded to it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-upcount-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const fx = await makeFixture(join(dir, 'catalogue'))
  const entry = await fx.addImage('up', 1024 * 1024, { pieceLength: 64 * 1024 })
  const torrent = fx.torrents.get(entry.id) as Uint8Array
  // the seeding site's data dir as a finished download leaves it: the .torrent and the file, registered and cached
  const dataDir = join(dir, 'site')
  await mkdir(join(dataDir, 'torrents'), { recursive: true })
  await writeFile(join(dataDir, 'torrents', `${entry.infoHash}.torrent`), torrent)
  await mkdir(join(dataDir, 'downloads', entry.infoHash), { recursive: true })
  await copyFile(fx.images.get(entry.id) as string, join(dataDir, 'downloads', entry.infoHash, entry.id))
  let db = await openDb(dataDir)
  await new StateStore(db.sub('images')).put({ ...newRecord('cat', entry, 1, []), state: 'registered', cached: true })

  const log = pino({ level: 'silent' })
  const swarmOpts = (d: string): SwarmOptions => ({ dataDir: d, torrentPort: 0, dht: { enabled: false, bootstrap: [] }, lsd: false, pex: false, trackers: [], uploadLimit: 0, downloadLimit: 0, maxConns: 20 })
  const swarm = new Swarm(swarmOpts(dataDir), log)
  const peer = new Swarm(swarmOpts(join(dir, 'peer')), log)
  t.teardown(async () => { await peer.close(); await swarm.close() })
  const store = new StateStore(db.sub('images'))
  await store.load()
  const cfg = { dataDir, swarm: { maxConcurrentDownloads: 1 }, cache: { maxBytes: 1e12 }, policy: {} }
  // No tick after the first one (no catalogue, no job to kick one): what the peer takes is folded
  // into the record by close() or by nothing.
  // subscribed to 'cat' (an agent seeds only images of the catalogues it subscribes to), with no index yet
  const pollers = [{ name: 'cat', current: undefined }] as never
  const r = new Reconciler(cfg as never, { store, swarm, targets: [], pollers, log, http: undefined as never, settings: db.sub('settings'), tickMs: 3600_000 })
  await r.start()
  await r.idle()
  const seeding = swarm.get(entry.infoHash)
  t.ok(seeding, 'the registered image is seeded')
  t.equal(store.get('cat', entry.id)?.bytesUploaded, 0, 'nothing uploaded yet')

  const got = peer.add(entry.infoHash, torrent, [])
  peer.addPeer(entry.infoHash, `127.0.0.1:${await swarm.listening()}`)
  await got.done
  t.ok((seeding?.counters.uploaded ?? 0) >= entry.size, `the seed counted ${seeding?.counters.uploaded ?? 0} bytes uploaded`)

  await r.close()
  await swarm.close()
  await db.close()
  await peer.close()
  const received = got.counters.bytesFromPeers
  t.ok(received >= entry.size, `the peer received ${received} bytes`)

  db = await openDb(dataDir)
  const reopened = new StateStore(db.sub('images'))
  await reopened.load()
  await db.close()
  t.equal(reopened.get('cat', entry.id)?.bytesUploaded, received, 'the saved upload count is what the peer received')
})
