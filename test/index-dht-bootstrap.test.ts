import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { imagesOf, startAgent, waitFor } from './helpers/agent-proc.js'
import { freePort } from './helpers/free-port.js'
import { body, indexBytes, makeServerDir } from './index-fixture.js'

// docs/index-server.md: "on a network without the public DHT routers agents can name [the index
// server's DHT node] as their bootstrap node". Here that is the only way to the bytes: the served
// torrent names no tracker and no web seed, the agent has no tracker and no LSD, and the network
// has two DHT nodes, the index server's and the agent's. The agent must find the origin seed
// through the index server's node, at once, not at the next 15-minute DHT announce.

t.test('an agent bootstrapping from the index server\'s DHT node finds its seed, with no tracker and no web seed', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const entry = await fx.addImage('dht-only', 2 * 1024 * 1024 + 333, { pieceLength: 64 * 1024 })
  const torrentPort = await freePort()
  const base = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort, dht: true })
  const daemon = await startIndexDaemon({
    ...base,
    seeding: { ...base.seeding, utp: false },
    torrents: { ...base.torrents, injectTracker: false, injectWebSeed: false }
  }, { logger: false })
  t.teardown(async () => { await daemon.close() })
  const url = daemon.url
  const put = async (path: string, type: string, data: Uint8Array): Promise<void> => {
    const r = await fetch(url + path, { method: 'PUT', headers: { 'content-type': type }, body: body(data) })
    t.equal(r.status, 200, `PUT ${path}`)
  }
  await put('/v1/index.yaml', 'application/yaml', await indexBytes(fx))
  await put(`/v1/torrents/${entry.infoHash}.torrent`, 'application/x-bittorrent', fx.torrents.get(entry.id) as Uint8Array)
  await put(`/v1/images/${entry.id}`, 'application/octet-stream', await readFile(fx.images.get(entry.id) as string))
  await waitFor('the origin to seed the image', async () => ((await (await fetch(url + '/healthz')).json()) as { seeding: number }).seeding >= 1 ? true : undefined)
  const served = parseTorrent(new Uint8Array(await (await fetch(`${url}/v1/torrents/${entry.infoHash}.torrent`)).arrayBuffer()), { infoHash: entry.infoHash, length: entry.size })
  t.same([served.announce, served.webSeeds], [[], []], 'the served torrent names no tracker and no web seed')

  const agent = await startAgent(join(dir, 'site'), 'dht-site', {
    swarm: { torrentPort: 0, dht: { enabled: true, bootstrap: [`127.0.0.1:${torrentPort}`] }, lsd: false },
    subscriptions: [{ url: `${url}/v1/index.yaml`, root: fx.rootPath, pollInterval: '2s' }],
    policy: { approval: 'auto' }
  })
  t.teardown(async () => { await agent.stop() })
  // far below the 15 minutes between DHT announces: a run that has to wait for one fails here
  const img = await waitFor('the agent registering the image', async () => (await imagesOf(agent)).find((i) => i.id === entry.id && i.state === 'registered'), 60_000)
  t.equal(img.bytesFromPeers, entry.size, 'every byte came over BitTorrent, from the seed the DHT named')
  t.equal(img.bytesFromWebSeeds, 0, 'none from a web seed')
  t.equal((await readFile(join(dir, 'site', 'images', `${entry.id}.img`))).equals(await readFile(fx.images.get(entry.id) as string)), true, 'the target holds the image, byte for byte')
})
