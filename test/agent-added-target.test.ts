import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import type { TargetState } from '../agent/state-store.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import type { AgentProc, ImageViewLite } from './helpers/agent-proc.js'

/**
 * A site that adds a target to its config (a second directory, a Glance cloud next to the
 * directory it had) expects the images it already holds to show up there after the restart, not
 * only the next release. Real agents, a real origin and swarm, real LevelDB, real directories.
 */

type View = ImageViewLite & { targets: Record<string, TargetState> }

const sha512Of = async (p: string): Promise<string> => createHash('sha512').update(await readFile(p)).digest('hex')
const count = (a: AgentProc, msg: string): number => a.logs.filter((l) => l.includes(`"msg":"${msg}"`)).length
const dirTarget = (name: string, path: string): Record<string, unknown> => ({ name, type: 'directory', path })

t.test('a target added to the config gets the registered image from the cache: no download, no second sha512', async (t) => {
  const { dir, entry, startSite, startAgent, sub } = await seededOrigin(t, 'imgdist-added-target-', { id: 'added', size: 512 * 1024, pieceLength: 16 * 1024 })
  const [imagesA, imagesB] = [join(dir, 'images-a'), join(dir, 'images-b')]
  const a = await startSite('site-at', { targets: [dirTarget('a', imagesA)] })
  const first = await imageWhere(t, a, 'registered in a', (i) => i.id === entry.id && i.state === 'registered') as View
  const lineA = first.targets.a
  t.equal(await a.stop('SIGTERM'), 0)

  const b = await startAgent(join(dir, 'site'), 'site-at', { subscriptions: sub, targets: [dirTarget('a', imagesA), dirTarget('b', imagesB)] })
  const done = await imageWhere(t, b, 'registered in b too', (i) => i.id === entry.id && i.state === 'registered' && (i as View).targets.b?.state === 'registered', 20_000) as View
  t.equal(await sha512Of(join(imagesB, `${entry.id}.img`)), entry.sha512, 'the new target holds the image')
  t.equal(done.targets.b?.adopted, false, 'registered there, not adopted')
  t.same(done.targets.a, lineA, 'the line of the target that had it is untouched (not re-found and taken for an adopted image)')
  t.equal(count(b, 'downloading'), 0, 'nothing was downloaded')
  t.equal(count(b, 'verified sha512 and size'), 0, 'nor hashed again')
  t.equal(done.bytesThisRun, 0)
  t.equal(done.seeding, true, 'and it is still seeded')
  const said = b.logs.filter((l) => l.includes('"msg":"registering an image in the targets added to the config since"'))
  t.equal(said.length, 1, 'the log says why it was registered again, once')
  t.match(said[0], /"targets":\["b"\],"from":"cache"/)
  t.ok(b.logs.some((l) => l.includes('"msg":"the verified file is unchanged: registering it without hashing it again"')))

  // A third start with the same config: nothing more to do.
  t.equal(await b.stop('SIGTERM'), 0)
  const c = await startAgent(join(dir, 'site'), 'site-at', {}, b.configPath)
  await imageWhere(t, c, 'registered', (i) => i.id === entry.id && i.state === 'registered')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(count(c, 'registered'), 0, 'no target registered it again')
  t.equal(await c.stop('SIGTERM'), 0)
})

t.test('evicted from the cache: downloaded again for the added target only; policy and approval still decide', async (t) => {
  const { dir, entry, startSite, startAgent, sub } = await seededOrigin(t, 'imgdist-added-evicted-', { id: 'added-evicted', size: 512 * 1024, pieceLength: 16 * 1024 })
  const [imagesA, imagesB] = [join(dir, 'images-a'), join(dir, 'images-b')]
  // a cache smaller than the image: evicted once registered (the directory target's hard link keeps its copy)
  const a = await startSite('site-ae', { targets: [dirTarget('a', imagesA)], cache: { maxBytes: 1024 } })
  await imageWhere(t, a, 'registered and evicted', (i) => i.id === entry.id && i.state === 'registered' && !i.seeding)
  const inodeA = (await stat(join(imagesA, `${entry.id}.img`))).ino
  t.equal(await a.stop('SIGTERM'), 0)

  // Added while policy wants each image approved by hand: it waits, and says so.
  const site = { subscriptions: sub, targets: [dirTarget('a', imagesA), dirTarget('b', imagesB)] }
  const b = await startAgent(join(dir, 'site'), 'site-ae', { ...site, policy: { approval: 'manual' } })
  const waiting = await imageWhere(t, b, 'the reason says b waits for approval', (i) => i.id === entry.id && /^not registered in b \(added to the config since\): waiting for approval/.test(i.reason ?? ''))
  t.equal(waiting.state, 'registered', 'the image stays registered in a meanwhile')
  t.match(await b.cli('approve', entry.id), /approved added-evicted for b \(added to the config since it was registered\)/)
  const done = await imageWhere(t, b, 'registered in b', (i) => i.id === entry.id && i.state === 'registered' && (i as View).targets.b?.state === 'registered', 30_000) as View
  t.equal(count(b, 'downloading'), 1, 'the evicted image was downloaded again')
  t.match(b.logs.find((l) => l.includes('"msg":"registering an image in the targets added to the config since"')), /"targets":\["b"\],"from":"download"/)
  t.ok(done.bytesThisRun > 0)
  t.equal(await sha512Of(join(imagesB, `${entry.id}.img`)), entry.sha512, 'the new target holds the image')
  t.equal((await stat(join(imagesA, `${entry.id}.img`))).ino, inodeA, 'the first target\'s file was not written again')
  t.equal(done.targets.a?.adopted, false, 'nor its line taken for an adopted image')
  t.equal(await b.stop('SIGTERM'), 0)
})
