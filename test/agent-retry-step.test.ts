import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openDb } from '../agent/db.js'
import { resumeStep, retryStep } from '../agent/retry-step.js'
import { newRecord, StateStore, type ImageRecord } from '../agent/state-store.js'
import { identify } from '../agent/verified-file.js'
import type { ImageEntry } from '../lib/schema.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import { waitFor, type AgentProc, type ImageViewLite } from './helpers/agent-proc.js'

/**
 * DESIGN.md §4, "any step → failed → back to that step": a registration that fails (a target
 * down for hours, retried with backoff) is retried from `registering`, not from the download,
 * so a multi-GB image is not read and hashed again on every retry. Real agents, real LevelDB, a
 * real directory target made unusable (a file where its directory should be: root ignores
 * permissions) and then usable again.
 */

type View = ImageViewLite & { retries: number }

const sha512Of = async (p: string): Promise<string> => await readFile(p).then((b) => createHash('sha512').update(b).digest('hex'), () => 'none')
/** the pipeline logs this once per whole-file sha512 that passed (during the download, or a read of the file) */
const verifications = (a: AgentProc): number => a.logs.filter((l) => l.includes('"msg":"verified sha512 and size"')).length
const view = async (a: AgentProc, id: string): Promise<View | undefined> =>
  (await a.get<{ images: View[] }>('/v1/images')).images.find((i) => i.id === id)

/** A directory target whose directory cannot be made (a file is in the way) until `fix()`. */
async function blockedTarget (dir: string): Promise<{ site: Record<string, unknown>, images: string, fix: () => Promise<void> }> {
  const blocker = join(dir, 'blocker')
  await writeFile(blocker, 'a file where the target directory should be')
  const images = join(blocker, 'images')
  return {
    site: { targets: [{ name: 'dir', type: 'directory', path: images }], retry: { initial: '1s', max: '1s' } },
    images,
    fix: async () => { await rm(blocker); await mkdir(images, { recursive: true }) }
  }
}

/** The states the record went through since its last `failed`, read from the agent's LevelDB (the agent stopped). */
async function statesAfterLastFailure (a: AgentProc, id: string): Promise<string[]> {
  const db = await openDb(join(a.dir, 'data'))
  try {
    const store = new StateStore(db.sub('images'))
    await store.load()
    const rec = store.all().find((r) => r.id === id) as ImageRecord
    const states = rec.history.map((h) => h.state)
    return states.slice(states.lastIndexOf('failed') + 1)
  } finally { await db.close() }
}

t.test('where a retry goes back to, by the failed step, its error and the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-retry-step-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'img')
  await writeFile(path, 'the verified bytes')
  const sha512 = createHash('sha512').update('the verified bytes').digest('hex')
  const entry = { id: 'u', sha512, size: 18 } as unknown as ImageEntry
  const failed = (failedStep: ImageRecord['failedStep'], code: string): ImageRecord => {
    const rec = newRecord('c', entry, 1, [])
    return Object.assign(rec, { state: 'failed', failedStep, error: { code, message: code } })
  }
  const file = await identify(path)
  if (file === undefined) throw new Error('no file')
  const verified = (rec: ImageRecord): ImageRecord => Object.assign(rec, { verifiedFile: { ...file, sha512 } })

  t.equal(retryStep(verified(failed('registering', 'GLANCE_UNAVAILABLE'))), 'registering')
  t.equal(retryStep(failed('registering', 'GLANCE_UNAVAILABLE')), undefined, 'a record from before the file was identified: from approved')
  t.equal(retryStep(verified(failed('registering', 'GLANCE_HASH_MISMATCH'))), 'verifying', 'Glance found other bytes: ours are checked again')
  t.equal(retryStep(failed('verifying', 'IO_ERROR')), 'verifying')
  t.equal(retryStep(failed('verifying', 'HASH_MISMATCH')), undefined, 'a mismatch deleted the pieces: from approved')
  t.equal(retryStep(failed('downloading', 'NETWORK_ERROR')), undefined)
  t.equal(retryStep(failed('approved', 'GLANCE_UNAVAILABLE')), undefined)

  const rec = verified(failed('registering', 'IO_ERROR'))
  t.same(await resumeStep(rec, 'registering', path), { step: 'registering', why: 'the verified file is unchanged' })
  t.equal((await resumeStep(Object.assign(newRecord('c', { ...entry, sha512: 'f'.repeat(128) }, 1, []), { verifiedFile: rec.verifiedFile }), 'registering', path))?.step,
    'verifying', 'identified for other bytes: verified again')
  await utimes(path, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000))
  t.same(await resumeStep(rec, 'registering', path), { step: 'verifying', why: 'the file changed since it was verified' })
  t.equal((await resumeStep(failed('verifying', 'IO_ERROR'), 'verifying', path))?.step, 'verifying')
  await rm(path)
  t.equal(await resumeStep(rec, 'registering', path), undefined, 'the file gone: from approved')
})

t.test('a failed registration is retried from registering: no download, no second sha512', async (t) => {
  const { dir, entry, startSite } = await seededOrigin(t, 'imgdist-retry-reg-', { id: 'reg-retry', size: 512 * 1024, pieceLength: 16 * 1024 })
  const target = await blockedTarget(dir)
  const a = await startSite('site-rr', target.site)
  await waitFor('two retries failed at registration', async () => { const i = await view(a, entry.id); return i?.state === 'failed' && i.retries >= 3 })
    .catch(async (err) => { t.comment(await a.cli('images')); throw err })
  t.equal(verifications(a), 1, 'the image was hashed once, as it downloaded')
  await target.fix()
  const done = await imageWhere(t, a, 'registered once the target works', (i) => i.id === entry.id && i.state === 'registered', 20_000)
  t.equal(verifications(a), 1, 'no retry hashed it again')
  t.equal(a.logs.filter((l) => l.includes('"msg":"downloading"')).length, 1, 'nor downloaded it again')
  t.ok(a.logs.some((l) => l.includes('"msg":"the verified file is unchanged: registering it without hashing it again"')), 'the log says why')
  t.equal(done.seeding, true, 'it is seeded')
  t.equal(await sha512Of(join(target.images, `${entry.id}.img`)), entry.sha512, 'the registered file is the image')
  t.equal(await a.stop('SIGTERM'), 0)
  t.same(await statesAfterLastFailure(a, entry.id), ['registering', 'registered'], 'the record went from failed back to registering, not through approved, downloading and verifying')
})

t.test('after a restart, a failed registration is retried from registering: pieces not re-checked, no second sha512', async (t) => {
  const { dir, entry, startSite, startAgent } = await seededOrigin(t, 'imgdist-retry-restart-', { id: 'restart-retry', size: 512 * 1024, pieceLength: 16 * 1024 })
  const target = await blockedTarget(dir)
  const a = await startSite('site-rs', target.site)
  await waitFor('failed at registration', async () => { const i = await view(a, entry.id); return i?.state === 'failed' && i.retries >= 2 })
    .catch(async (err) => { t.comment(await a.cli('images')); throw err })
  t.equal(await a.stop('SIGTERM'), 0)
  await target.fix()
  const b = await startAgent(join(dir, 'site'), 'site-rs', {}, a.configPath)
  const done = await imageWhere(t, b, 'registered after the restart', (i) => i.id === entry.id && i.state === 'registered', 20_000)
  t.equal(verifications(b), 0, 'the restarted agent did not hash the image again')
  t.equal(done.resumedBytes, 0, 'nor re-check its pieces from disk')
  t.equal(done.bytesThisRun, 0, 'nor fetch any byte of it')
  t.equal(done.seeding, true, 'and seeds it')
  t.equal(await sha512Of(join(target.images, `${entry.id}.img`)), entry.sha512, 'the registered file is the image')
  t.equal(await b.stop('SIGTERM'), 0)
  t.same(await statesAfterLastFailure(b, entry.id), ['registering', 'registered'], 'failed → registering → registered')
})

t.test('a file changed on disk after its verification is verified again: touched, it passes; modified, HASH_MISMATCH and a new download', async (t) => {
  const { dir, entry, startSite } = await seededOrigin(t, 'imgdist-retry-changed-', { id: 'changed', size: 512 * 1024, pieceLength: 16 * 1024 })
  const target = await blockedTarget(dir)
  const a = await startSite('site-rc', target.site)
  const failedAfter = async (what: string, retries: number): Promise<View> => await waitFor(what, async () => {
    const i = await view(a, entry.id)
    return i?.state === 'failed' && i.retries >= retries ? i : undefined
  }).catch(async (err) => { t.comment(await a.cli('images')); throw err })
  const first = await failedAfter('failed at registration', 1)
  const file = join(a.dir, 'data', 'downloads', entry.infoHash, entry.id)
  t.equal(verifications(a), 1)

  // the same bytes with another mtime: not provably the file that passed, so it is read again
  const later = new Date(Date.now() + 60_000)
  await utimes(file, later, later)
  await waitFor('verified again after the touch', async () => verifications(a) === 2)
  const touched = await failedAfter('two more failed registrations after it', first.retries + 3)
  t.equal(verifications(a), 2, `once: the ${touched.retries - first.retries - 1} retries after it trusted the file again`)
  t.equal(a.logs.filter((l) => l.includes('"msg":"downloading"')).length, 1, 'nothing downloaded again')

  // one byte changed, the size the same: the new read finds it, the pieces go, the image is fetched again
  const fh = await open(file, 'r+')
  const b = Buffer.alloc(1)
  await fh.read(b, 0, 1, 1000)
  b[0] = (b[0] as number) ^ 0xff
  await fh.write(b, 0, 1, 1000)
  await fh.close()
  await waitFor('HASH_MISMATCH', async () => a.logs.some((l) => l.includes('"msg":"image step failed"') && l.includes('"code":"HASH_MISMATCH"')))
  await target.fix()
  await imageWhere(t, a, 'registered', (i) => i.id === entry.id && i.state === 'registered', 30_000)
  t.equal(a.logs.filter((l) => l.includes('"msg":"downloading"')).length, 2, 'downloaded again after the mismatch')
  t.equal(verifications(a), 3, 'and that download verified')
  t.equal(await sha512Of(join(target.images, `${entry.id}.img`)), entry.sha512, 'the registered file is the signed image, not the modified one')
  await a.stop('SIGTERM')
})
