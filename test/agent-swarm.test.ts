import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'

// Origin (index stand-in + a rate-limited origin seed) and three real agent processes on loopback,
// DHT off, tracker on: every site ends with the verified image, and sites fed each other.
t.test('three agents fetch one image from a slow origin and from each other', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-swarm-')
  const entry = await fx.addImage('alpine-3.20', 8 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
  // Slow enough that three sites cannot all be served by the origin alone in time, so they must share.
  const seeder = await startSeeder(fx, ['alpine-3.20'], { uploadLimit: 1024 * 1024 })
  t.teardown(seeder.close)

  const { agents, startAgent } = agentFleet(t)
  for (const site of ['site-a', 'site-b', 'site-c']) {
    await startAgent(join(dir, site), site, { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
  }
  for (const a of agents) {
    await waitFor(`${a.site} registered`, async () => (await imagesOf(a)).find((i) => i.id === entry.id && i.state === 'registered'), 120_000)
  }
  let received = 0
  let uploadedByAgents = 0
  for (const a of agents) {
    const bytes = await readFile(join(a.dir, 'images', `${entry.id}.img`))
    t.equal(createHash('sha512').update(bytes).digest('hex'), entry.sha512, `${a.site}: sha512 equals the catalogue`)
    const side = JSON.parse(await readFile(join(a.dir, 'images', `${entry.id}.json`), 'utf8')) as { sha512: string, endorsers: string[], catalogue: string }
    t.equal(side.sha512, entry.sha512)
    t.equal(side.catalogue, 'test-catalogue')
    t.ok(side.endorsers.length >= 1, 'sidecar names the endorsers')
    const img = (await imagesOf(a)).find((i) => i.id === entry.id)
    received += (img?.bytesFromPeers ?? 0)
    uploadedByAgents += img?.bytesUploaded ?? 0
  }
  const originUploaded = seeder.client.torrents.reduce((s, tt) => s + tt.uploaded, 0)
  t.ok(uploadedByAgents > 0, `agents uploaded to each other (${uploadedByAgents} bytes)`)
  t.ok(received > originUploaded, `sites received ${received} bytes, more than the origin sent (${originUploaded})`)
  const status = await agents[0]?.get<{ catalogues: Array<{ indexVersion: number, error?: unknown }> }>('/v1/status')
  t.equal(status?.catalogues[0]?.indexVersion, fx.index.signed.version)
  const metrics = await fetch(`${agents[0]?.api ?? ''}/metrics`).then(async (r) => await r.text())
  t.match(metrics, /imgdist_agent_images\{state="registered"\} 1/)
  // SIGTERM drains and exits 0.
  for (const a of agents) t.equal(await a.stop('SIGTERM'), 0, `${a.site} stops cleanly`)
})
