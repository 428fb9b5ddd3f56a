import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { imagesOf, startAgent, waitFor, type AgentProc } from './helpers/agent-proc.js'
import { freePort } from './helpers/free-port.js'
import { body, indexBytes, makeServerDir } from './index-fixture.js'

// docs/index-server.md: "on a network without the public DHT routers agents can name [the index
// server's DHT node] as their bootstrap node". Here that is the only way to the bytes: the served
// torrent names no tracker and no web seed, the agent has no tracker and no LSD, and the network
// has two DHT nodes, the index server's and the agent's. The agent must find the origin seed
// through the index server's node, at once, not at the next 15-minute DHT announce.

/** The index daemon with DHT on, serving `size` bytes under a torrent with no tracker and no web seed. */
async function dhtOnlyIndex (t: Test, id: string, size: number, uploadLimit = -1) {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const entry = await fx.addImage(id, size, { pieceLength: 64 * 1024 })
  const torrentPort = await freePort()
  const base = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort, dht: true })
  const daemon = await startIndexDaemon({
    ...base,
    seeding: { ...base.seeding, utp: false, uploadLimit },
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
  const agentConfig = {
    swarm: { torrentPort: 0, dht: { enabled: true, bootstrap: [`127.0.0.1:${torrentPort}`] }, lsd: false },
    subscriptions: [{ url: `${url}/v1/index.yaml`, root: fx.rootPath, pollInterval: '2s' }],
    policy: { approval: 'auto' }
  }
  return { fx, dir, entry, agentConfig }
}

async function peersOf (a: AgentProc): Promise<Array<{ found?: string }>> {
  return (await a.get<{ peers: Array<{ found?: string }> }>('/v1/peers')).peers
}

t.test('an agent bootstrapping from the index server\'s DHT node finds its seed, with no tracker and no web seed', async (t) => {
  const { fx, dir, entry, agentConfig } = await dhtOnlyIndex(t, 'dht-only', 2 * 1024 * 1024 + 333)
  const agent = await startAgent(join(dir, 'site'), 'dht-site', agentConfig)
  t.teardown(async () => { await agent.stop() })
  // far below the 15 minutes between DHT announces: a run that has to wait for one fails here
  const img = await waitFor('the agent registering the image', async () => (await imagesOf(agent)).find((i) => i.id === entry.id && i.state === 'registered'), 60_000)
  t.equal(img.bytesFromPeers, entry.size, 'every byte came over BitTorrent, from the seed the DHT named')
  t.equal(img.bytesFromWebSeeds, 0, 'none from a web seed')
  t.equal((await readFile(join(dir, 'site', 'images', `${entry.id}.img`))).equals(await readFile(fx.images.get(entry.id) as string)), true, 'the target holds the image, byte for byte')
})

t.test('three agents on the DHT alone find the origin and each other, and trade pieces', async (t) => {
  // The origin sends 256 KiB/s: alone it would need 3 × 12 s; agents that find each other
  // (through the DHT, or through the origin's peer exchange) share one copy from it.
  const size = 3 * 1024 * 1024 + 77
  const { fx, dir, entry, agentConfig } = await dhtOnlyIndex(t, 'dht-fleet', size, 256 * 1024)
  const agents = await Promise.all([1, 2, 3].map(async (i) => await startAgent(join(dir, `site${i}`), `dht-site-${i}`, agentConfig)))
  t.teardown(async () => { await Promise.all(agents.map(async (a) => { await a.stop() })) })
  const found = new Set<string>()
  for (const a of agents) {
    await waitFor('every agent registering the image', async () => {
      for (const b of agents) for (const p of await peersOf(b)) found.add(p.found ?? '?')
      return (await imagesOf(a)).some((i) => i.id === entry.id && i.state === 'registered') || undefined
    }, 90_000)
  }
  const imgs = await Promise.all(agents.map(async (a) => (await imagesOf(a)).find((i) => i.id === entry.id)))
  t.ok(imgs.every((i) => i?.bytesFromPeers === size && i.bytesFromWebSeeds === 0), 'each agent got every byte over BitTorrent')
  const traded = imgs.reduce((n, i) => n + (i?.bytesUploaded ?? 0), 0)
  t.ok(traded >= size, `the agents uploaded ${traded} bytes to each other (at least one image's worth)`)
  t.comment(`how the agents' connections were found: ${[...found].sort().join(', ')}`)
  const want = await readFile(fx.images.get(entry.id) as string)
  for (const i of [1, 2, 3]) t.ok((await readFile(join(dir, `site${i}`, 'images', `${entry.id}.img`))).equals(want), `site ${i} holds the image, byte for byte`)
})
