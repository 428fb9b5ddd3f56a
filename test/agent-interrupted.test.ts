import { createHash } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { openDb } from '../agent/db.js'
import { StateStore, type ImageRecord } from '../agent/state-store.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import { imagesOf, type AgentProc } from './helpers/agent-proc.js'

/**
 * An image a stop or crash interrupts in its verification or registration (a long Glance upload
 * when systemd restarts the agent) resumes at that step after the restart, by the rule a failed
 * step's retry follows (agent/retry-step.ts): not from `approved`, which read the whole image
 * twice more (every piece's sha1, then the sha512). What a crash leaves is the record in LevelDB in
 * that state, so that is what the test writes between a real agent's runs.
 */

const sha512Of = async (p: string): Promise<string> => await readFile(p).then((b) => createHash('sha512').update(b).digest('hex'), () => 'none')
const count = (a: AgentProc, msg: string): number => a.logs.filter((l) => l.includes(`"msg":"${msg}"`)).length

/**
 * Puts the stopped agent's record of `id` in `state`, as a stop mid-step leaves it, with what its
 * targets hold removed (so the resumed step has work to do): the number of history entries before
 * the restart.
 */
async function interruptIn (a: AgentProc, id: string, state: 'verifying' | 'registering', edit: (r: ImageRecord) => void = () => {}): Promise<number> {
  await rm(join(a.dir, 'images', `${id}.img`))
  await rm(join(a.dir, 'images', `${id}.json`))
  const db = await openDb(join(a.dir, 'data'))
  try {
    const store = new StateStore(db.sub('images'))
    await store.load()
    const rec = store.all().find((r) => r.id === id) as ImageRecord
    rec.targets = {}
    edit(rec)
    await store.transition(rec, state)
    return rec.history.length
  } finally { await db.close() }
}

async function statesSince (a: AgentProc, id: string, n: number): Promise<string[]> {
  const db = await openDb(join(a.dir, 'data'))
  try {
    const store = new StateStore(db.sub('images'))
    await store.load()
    return (store.all().find((r) => r.id === id) as ImageRecord).history.slice(n).map((h) => h.state)
  } finally { await db.close() }
}

t.test('interrupted while registering or verifying, an image resumes at that step after a restart', async (t) => {
  const { dir, entry, startSite, startAgent } = await seededOrigin(t, 'imgdist-interrupted-', { id: 'cut', size: 1024 * 1024, pieceLength: 16 * 1024 })
  const first = await startSite('site-i')
  await imageWhere(t, first, 'registered', (i) => i.id === entry.id && i.state === 'registered')
  t.equal(await first.stop('SIGTERM'), 0)
  const restart = async (): Promise<AgentProc> => await startAgent(join(dir, 'site'), 'site-i', {}, first.configPath)
  const target = join(first.dir, 'images', `${entry.id}.img`)

  // registering, the verified file unchanged: registered again with nothing read
  let n = await interruptIn(first, entry.id, 'registering')
  let a = await restart()
  let done = await imageWhere(t, a, 'registered after a restart in registering', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  t.equal(count(a, 'verified sha512 and size'), 0, 'no sha512')
  t.equal(done.resumedBytes, 0, 'no sha1 pass over its pieces')
  t.equal(count(a, 'downloading'), 0, 'no download')
  t.equal(count(a, 'the verified file is unchanged: registering it without hashing it again'), 1, 'the log says why')
  t.equal(await sha512Of(target), entry.sha512, 'the target holds the image')
  t.equal(await a.stop('SIGTERM'), 0)
  t.same(await statesSince(a, entry.id, n), ['registered'], 'registering → registered')

  // verifying: the file is read and hashed once, then registered; its pieces are not sha1-checked
  n = await interruptIn(a, entry.id, 'verifying', (r) => { delete r.verifiedFile })
  a = await restart()
  done = await imageWhere(t, a, 'registered after a restart in verifying', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  t.equal(count(a, 'verified sha512 and size'), 1, 'one sha512')
  t.equal(done.resumedBytes, 0, 'no sha1 pass over its pieces')
  t.equal(count(a, 'downloading'), 0, 'no download')
  t.equal(await sha512Of(target), entry.sha512)
  t.equal(await a.stop('SIGTERM'), 0)
  t.same(await statesSince(a, entry.id, n), ['registering', 'registered'], 'verifying → registering → registered')

  // registering as written by an agent older than the rule (no identity for its file): from the start
  n = await interruptIn(a, entry.id, 'registering', (r) => { delete r.verifiedFile })
  a = await restart()
  done = await imageWhere(t, a, 'registered after a restart of an old record', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  t.equal(done.resumedBytes, entry.size, 'its pieces checked from disk')
  t.equal(count(a, 'verified sha512 and size'), 1, 'and the whole hashed')
  t.equal(done.bytesThisRun, 0, 'nothing fetched')
  t.equal(await a.stop('SIGTERM'), 0)
  t.same(await statesSince(a, entry.id, n), ['approved', 'downloading', 'verifying', 'registering', 'registered'])

  // paused before the stop: it waits in its state, saying so, until resume
  a = await restart()
  await a.cli('pause')
  t.equal(await a.stop('SIGTERM'), 0)
  n = await interruptIn(a, entry.id, 'registering')
  a = await restart()
  const waiting = await imageWhere(t, a, 'waiting while paused', (i) => i.id === entry.id && i.reason === 'interrupted by the last stop; resumes at registering')
  t.equal(waiting.state, 'registering')
  await new Promise((resolve) => setTimeout(resolve, 2500)) // two reconciler ticks
  t.match(await imagesOf(a), [{ id: entry.id, state: 'registering', reason: 'interrupted by the last stop; resumes at registering' }], 'still waiting')
  await a.cli('resume')
  await imageWhere(t, a, 'registered after resume', (i) => i.id === entry.id && i.state === 'registered' && i.seeding)
  t.equal(count(a, 'verified sha512 and size') + count(a, 'downloading'), 0, 'nothing read or fetched')
  t.equal(await a.stop('SIGTERM'), 0)
  t.same(await statesSince(a, entry.id, n), ['registered'])
})
