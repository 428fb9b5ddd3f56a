import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { startCorruptPeer } from './helpers/agent-corrupt-peer.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'

const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex')

t.test('a peer serving corrupt pieces is cut off and the download still verifies', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-corrupt-')
  const entry = await fx.addImage('corrupt-target', 4 * 1024 * 1024, { pieceLength: 32 * 1024, announce: [origin.announce] })
  // The bad peer is fast and announced first; the good seed is slow, so the agent surely asks the bad one.
  const bad = await startCorruptPeer({ infoHash: entry.infoHash, filePath: fx.images.get(entry.id) as string, size: entry.size, pieceLength: 32 * 1024, announce: origin.announce })
  t.teardown(bad.close)
  await waitFor('corrupt peer announced', async () => (origin.tracker.torrents[entry.infoHash]?.peers.length ?? 0) >= 1, 10_000)
  const seeder = await startSeeder(fx, [entry.id], { uploadLimit: 512 * 1024 })
  t.teardown(seeder.close)
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(dir, 'site'), 'site-x', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
  const img = await waitFor('registered', async () => (await imagesOf(a)).find((i) => i.state === 'registered'), 90_000)
  t.ok(bad.requests > 0, `the corrupt peer was asked for blocks (${bad.requests})`)
  t.ok(img.hashFailures > 0, `pieces failing sha1 were discarded (${img.hashFailures})`)
  t.ok(img.bannedPeers.some((p) => p.endsWith(`:${bad.port}`)), `the corrupt peer was banned (${img.bannedPeers.join(', ')})`)
  t.equal(sha512(await readFile(join(a.dir, 'images', `${entry.id}.img`))), entry.sha512, 'the registered file verifies')
  const metrics = await fetch(`${a.api}/metrics`).then(async (r) => await r.text())
  t.match(metrics, /imgdist_agent_piece_hash_failures [1-9]/)
})

t.test('a web seed serving wrong bytes is caught and a good source completes the image', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-webseed-')
  const id = 'webseed-target'
  const webSeed = `http://127.0.0.1:${origin.port}/v1/images/${id}`
  const entry = await fx.addImage(id, 2 * 1024 * 1024, { pieceLength: 32 * 1024, announce: [origin.announce], webSeeds: [webSeed] })
  origin.corruptWebSeed.add(id)
  const { startAgent } = agentFleet(t)
  // The web seed is the only source at first (the agent asks web seeds only for pieces no peer
  // offers), so its bad bytes are surely fetched; the good BitTorrent seed comes afterwards.
  const a = await startAgent(join(dir, 'site'), 'site-w', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
  const caught = await waitFor('web seed banned', async () => (await imagesOf(a)).find((i) => i.bannedPeers.includes(webSeed)), 60_000)
  t.ok((origin.webSeedHits.get(id) ?? 0) > 0, 'the web seed was used')
  t.ok(caught.hashFailures > 0, `its pieces failed their sha1 (${caught.hashFailures})`)
  t.equal(caught.state, 'downloading', 'nothing was registered from the bad bytes')
  const seeder = await startSeeder(fx, [id], { uploadLimit: 512 * 1024 })
  t.teardown(seeder.close)
  const img = await waitFor('registered', async () => (await imagesOf(a)).find((i) => i.state === 'registered'), 90_000)
  t.ok(img.bannedPeers.includes(webSeed), `the web seed stays dropped (${JSON.stringify(img)})`)
  // When the ban was seen, the web seed was the only source, so the live bytesThisRun were all its own.
  t.equal(img.bytesFromWebSeeds, caught.bytesThisRun, 'no more bytes were taken from the banned web seed')
  t.equal(sha512(await readFile(join(a.dir, 'images', `${id}.img`))), entry.sha512, 'the registered file verifies')
})
