import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startOrigin } from './helpers/agent-origin.js'
import { imagesOf, type AgentProc } from './helpers/agent-proc.js'
import { makeFixture } from './helpers/catalogue-fixture.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'

/**
 * A site that drops a catalogue from its subscriptions (and restarts: subscriptions are read at
 * start) stops acting for it: no download, retry, registration or seeding of its images, since no
 * catalogue vouches for them any more (a revocation would not reach the site). What its targets
 * hold stays there, as after any config edit. Subscribed again, everything carries on. Real
 * agents, two real catalogues behind real HTTP, a real swarm, LevelDB and directory target.
 */

const UNSUBSCRIBED = /^its catalogue is no longer among the config's subscriptions/
const count = (a: AgentProc, msg: string): number => a.logs.filter((l) => l.includes(`"msg":"${msg}"`)).length

t.test('images of a catalogue no longer subscribed are left as they are: not seeded, downloaded or registered', async (t) => {
  const { dir, fx, origin, entry, sub, startSite, startAgent } = await seededOrigin(t, 'imgdist-unsubscribed-', { id: 'kept', size: 256 * 1024, pieceLength: 16 * 1024 })
  // no seeder and no web seed: stays downloading
  const stuck = await fx.addImage('stuck', 256 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  const fx2 = await makeFixture(join(dir, 'fx2'), { name: 'other-catalogue' })
  const origin2 = await startOrigin(fx2)
  t.teardown(origin2.close)
  const sub2 = { url: origin2.indexUrl, root: fx2.rootPath, pollInterval: '1s' }
  const images = join(dir, 'site', 'images')

  const a = await startSite('site-un', { subscriptions: [...sub, sub2] })
  await imageWhere(t, a, 'kept registered and seeding', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  await imageWhere(t, a, 'stuck downloading', (i) => i.id === stuck.id && i.state === 'downloading')
  t.equal(await a.stop('SIGTERM'), 0)

  const b = await startAgent(join(dir, 'site'), 'site-un', { subscriptions: [sub2] })
  const kept = await imageWhere(t, b, 'kept says why nothing is done with it', (i) => i.id === entry.id && UNSUBSCRIBED.test(i.reason ?? ''))
  t.equal(kept.state, 'registered', 'still registered')
  t.equal(kept.seeding, false, 'not seeded')
  const held = await imageWhere(t, b, 'stuck says why it waits', (i) => i.id === stuck.id && UNSUBSCRIBED.test(i.reason ?? ''))
  t.equal(held.state, 'approved', 'the interrupted download waits')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(count(b, 'downloading'), 0, 'no download started')
  t.equal((await imagesOf(b)).find((i) => i.id === stuck.id)?.state, 'approved', 'and it still waits')
  t.same((await b.get<{ peers: unknown[] }>('/v1/peers')).peers, [], 'no peer: no torrent in the swarm')
  const warned = b.logs.filter((l) => l.includes('"msg":"images of a catalogue that is no longer subscribed'))
  t.equal(warned.length, 1, 'the start says so once')
  t.match(warned[0], /"catalogue":"test-catalogue","images":2/)
  t.equal(createHash('sha512').update(await readFile(join(images, `${entry.id}.img`))).digest('hex'), entry.sha512, 'the target still holds the image')
  t.equal(await b.stop('SIGTERM'), 0)

  const c = await startAgent(join(dir, 'site'), 'site-un', { subscriptions: [...sub, sub2] })
  const back = await imageWhere(t, c, 'subscribed again: kept seeding', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  t.notMatch(back.reason ?? '', UNSUBSCRIBED, 'and its reason is what it was')
  await imageWhere(t, c, 'and stuck downloading again', (i) => i.id === stuck.id && i.state === 'downloading')
  t.equal(c.logs.filter((l) => l.includes('no longer subscribed')).length, 0, 'with nothing said about subscriptions')
  t.equal(await c.stop('SIGTERM'), 0)
})
