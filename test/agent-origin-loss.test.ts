import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { editIndex } from '../lib/catalogue-edit.js'
import { generateKeyPair } from '../lib/keys.js'
import { makeFixture } from './helpers/catalogue-fixture.js'
import { startOrigin, startSeeder, type Origin } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'

interface Status { catalogues: Array<{ indexVersion: number, error?: { code: string, message: string } }> }

t.test('the origin goes away: agents finish from each other; a catalogue by an untrusted key is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-loss-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const fx = await makeFixture(join(dir, 'fx'))
  let origin: Origin = await startOrigin(fx)
  t.teardown(async () => { await origin.close() })
  const entry = await fx.addImage('lonely', 4 * 1024 * 1024, { pieceLength: 32 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, [entry.id])
  t.teardown(seeder.close)
  const { agents, startAgent } = agentFleet(t)
  const sub = { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }] }
  const first = await startAgent(join(dir, 'a'), 'site-a', sub)
  await waitFor('first site registered', async () => (await imagesOf(first)).find((i) => i.state === 'registered'), 60_000)
  // The others download slowly, so they are surely mid-way when the origin disappears.
  const slow = { ...sub, swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false, downloadLimit: 400 * 1024 } }
  for (const s of ['b', 'c']) await startAgent(join(dir, s), `site-${s}`, slow)
  for (const a of agents.slice(1)) await waitFor(`${a.site} downloading`, async () => (await imagesOf(a)).find((i) => i.state === 'downloading' && i.progress > 0.05), 30_000)
  const index1 = fx.index.signed.version
  await origin.close()
  await seeder.close()
  for (const a of agents.slice(1)) {
    const img = await waitFor(`${a.site} registered without the origin`, async () => (await imagesOf(a)).find((i) => i.state === 'registered'), 90_000)
    t.equal(createHash('sha512').update(await readFile(join(a.dir, 'images', `${entry.id}.img`))).digest('hex'), entry.sha512, `${a.site} verified`)
    t.ok(img.bytesFromPeers > 0)
  }
  const down = await waitFor('poll error shown', async () => { const s = await first.get<Status>('/v1/status'); return s.catalogues[0]?.error !== undefined ? s : undefined }, 20_000)
  t.match(down.catalogues[0]?.error?.code, /NETWORK_ERROR|HTTP_ERROR/, 'an unreachable index is reported')

  // The index comes back with a catalogue signed by a key the root does not trust.
  const rogue = generateKeyPair()
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => ({ ...s, images: [] })), [rogue])
  origin = await startOrigin(fx, { port: origin.port })
  for (const a of agents) {
    const s = await waitFor(`${a.site} refuses the rogue index`, async () => {
      const st = await a.get<Status>('/v1/status')
      return /SIGNATURE|THRESHOLD/.test(st.catalogues[0]?.error?.code ?? '') ? st : undefined
    }, 20_000)
    t.equal(s.catalogues[0]?.indexVersion, index1, `${a.site} keeps index v${index1}`)
    t.match(s.catalogues[0]?.error?.message ?? '', /signature/i, 'the reason is shown')
    t.equal((await imagesOf(a)).find((i) => i.id === entry.id)?.state, 'registered', 'the image stays registered')
  }
})
