import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { editIndex, upsertImage } from '../lib/catalogue-edit.js'
import { rfc3339 } from '../lib/duration.js'
import { ImgdistError } from '../lib/errors.js'
import { openDb, type AgentDb } from '../agent/db.js'
import { sameListing, syncCatalogue } from '../agent/catalogue-sync.js'
import { formatTargets } from '../agent/format.js'
import { ListingRefresh } from '../agent/listing-refresh.js'
import type { Catalogue } from '../agent/catalogue.js'
import type { ResolvedPolicy } from '../agent/config.js'
import { Retirement } from '../agent/retirement.js'
import { newRecord, StateStore, type ImageRecord } from '../agent/state-store.js'
import type { Target, TargetImage } from '../agent/targets/target.js'
import type { ImageEntry } from '../lib/schema.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import { waitFor, type ImageViewLite } from './helpers/agent-proc.js'

/**
 * The catalogue re-signs bytes a site has registered, under another version, name, properties
 * or endorsers: the site's target shows the listing now in force (Target.refresh), without
 * moving a byte. A real agent with a directory target; the failure path with a real LevelDB and
 * a target that refuses once. (The Glance side: test/glance-agent.test.ts.)
 */

type Line = { state: string, ref?: string, outdated?: { version: string }, error?: { code: string } }
const lineOf = (i: ImageViewLite, name: string): Line | undefined => (i as unknown as { targets: Record<string, Line> }).targets[name]
interface SidecarLite { version: string, name: string, minRam: number, properties: Record<string, string>, catalogueVersion: number, verifiedAt: string }

t.test('re-signed with other metadata: the sidecar shows the new listing, the image file is untouched', async (t) => {
  const { fx, entry, startSite } = await seededOrigin(t, 'imgdist-refresh-', { id: 'rs', size: 256 * 1024, pieceLength: 16 * 1024 })
  const a = await startSite('site-rs')
  await imageWhere(t, a, 'registered', (i) => i.state === 'registered')
  const img = join(a.dir, 'images', 'rs.img')
  const sidecar = async (): Promise<SidecarLite> => JSON.parse(await readFile(join(a.dir, 'images', 'rs.json'), 'utf8')) as SidecarLite
  const before = { side: await sidecar(), ino: (await stat(img)).ino }
  t.equal(before.side.version, entry.version)

  // only the expiry changes: nothing a target shows, so nothing is rewritten
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, { ...entry, expires: rfc3339(new Date(Date.now() + 86400_000)) })))
  await waitFor('the later index accepted', async () => (await a.get<{ catalogues: Array<{ indexVersion: number }> }>('/v1/status')).catalogues[0]?.indexVersion === fx.index.signed.version)
  const quiet = await imageWhere(t, a, 'registered', (i) => i.id === 'rs')
  t.notOk(lineOf(quiet, 'dir')?.outdated, 'an expiry is not a listing to write')
  t.equal((await sidecar()).catalogueVersion, before.side.catalogueVersion, 'the sidecar is not rewritten')

  const resigned: ImageEntry = { ...entry, version: `${entry.version}.1`, name: `${entry.name}-fixed`, minRam: 2048, properties: { hw_disk_bus: 'scsi' } }
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, resigned)))
  const side = await waitFor('the sidecar rewritten', async () => { const s = await sidecar(); return s.version === resigned.version ? s : undefined }, 20_000)
  t.match(side, { name: resigned.name, minRam: 2048, properties: { hw_disk_bus: 'scsi' }, catalogueVersion: fx.index.signed.version })
  t.equal(side.verifiedAt, before.side.verifiedAt, 'verified when the bytes were, not now')
  t.equal((await stat(img)).ino, before.ino, 'the same image file: no bytes moved')
  const v = await imageWhere(t, a, 'the line up to date', (i) => i.id === 'rs' && lineOf(i, 'dir')?.outdated === undefined)
  t.match(v, { state: 'registered', version: resigned.version })
  t.notOk(lineOf(v, 'dir')?.error)
  t.ok(a.logs.some((l) => l.includes('the target shows the listing now in force')), 'the log says so')
  t.notMatch(await a.cli('images'), /still shows/)
  await a.stop('SIGTERM')
})

/** `chattr +i`/`-i` on a directory: nothing can be created in it, root included. */
async function immutable (dir: string, on: boolean): Promise<string | undefined> {
  return await new Promise((resolve) => {
    execFile('chattr', [on ? '+i' : '-i', dir], (err, _out, stderr) => { resolve(err === null ? undefined : `${err.message} ${stderr}`.trim()) })
  })
}

t.test('a target that cannot take the new listing: the line keeps the error, metrics count it, and it is written once the target is back', async (t) => {
  const { fx, entry, startSite } = await seededOrigin(t, 'imgdist-refresh-fail-', { id: 'rf', size: 128 * 1024, pieceLength: 16 * 1024 })
  const a = await startSite('site-rf', { retry: { initial: '1s', max: '2s' } })
  await imageWhere(t, a, 'registered', (i) => i.state === 'registered')
  const images = join(a.dir, 'images')
  const why = await immutable(images, true)
  if (why !== undefined) {
    // root ignores permissions: only the immutable flag makes the directory refuse a new file
    t.comment(`SKIPPING the failing-target part: chattr +i does not work here (${why}); CI's file system supports it`)
    t.pass('a target that cannot take the new listing', { skip: `chattr +i does not work here: ${why}` })
    await a.stop('SIGTERM')
    return
  }
  t.teardown(async () => { await immutable(images, false) })
  const metric = async (name: string): Promise<string | undefined> =>
    new RegExp(`\\n${name}\\{target="dir"\\} (\\d+)\\n`).exec(await (await fetch(`${a.api}/metrics`)).text())?.[1]
  const next: ImageEntry = { ...entry, version: `${entry.version}.9` }
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, next)))
  const failing = await imageWhere(t, a, 'the refresh failing', (i) => i.id === 'rf' && lineOf(i, 'dir')?.error !== undefined, 20_000)
  t.match(lineOf(failing, 'dir'), { state: 'registered', outdated: { version: entry.version }, error: { code: 'TARGET_UNWRITABLE' } }, 'still registered, with the error and what it shows')
  t.equal(failing.state, 'registered', 'the image stays in use')
  t.match(await a.cli('images'), new RegExp(`dir registered \\S+ \\(still shows ${entry.version.replace(/\./g, '\\.')}\\)`), 'imgdist-agent images says what it still shows')
  t.equal(await metric('imgdist_agent_target_errors'), '1')
  t.equal(await metric('imgdist_agent_target_outdated'), '1')
  await immutable(images, false)
  await waitFor('the sidecar rewritten once the directory takes files again', async () =>
    (JSON.parse(await readFile(join(images, 'rf.json'), 'utf8')) as SidecarLite).version === next.version, 20_000)
  await imageWhere(t, a, 'the line up to date', (i) => i.id === 'rf' && lineOf(i, 'dir')?.outdated === undefined && lineOf(i, 'dir')?.error === undefined)
  t.equal(await metric('imgdist_agent_target_errors'), '0')
  t.equal(await metric('imgdist_agent_target_outdated'), '0')
  await a.stop('SIGTERM')
})

function entryOf (over: Partial<ImageEntry> = {}): ImageEntry {
  return {
    id: 'x', name: 'X', version: '1', sha512: 'a'.repeat(128), size: 1, infoHash: 'b'.repeat(40), torrent: 'x.torrent',
    diskFormat: 'raw', containerFormat: 'bare', arch: 'x86_64', os: 'linux', minDisk: 0, minRam: 0, properties: { p: '1' }, ...over
  } as ImageEntry
}

function catalogueOf (version: number, images: ImageEntry[], signers = ['k1']): Catalogue {
  return { name: 'c', signers, index: { signed: { version, images, revoked: [] } } } as unknown as Catalogue
}

t.test('sameListing: what a target shows, and nothing else', async (t) => {
  const e = entryOf()
  t.ok(sameListing(e, ['k1', 'k2'], { ...e, expires: '2030-01-01T00:00:00Z', webSeeds: ['http://x/'] }, ['k2', 'k1']), 'expiry, web seeds, endorser order')
  t.ok(sameListing(e, ['k'], { ...e, properties: { p: '1' } }, ['k']))
  for (const over of [{ version: '2' }, { name: 'Y' }, { minRam: 1 }, { properties: { p: '2' } }, { properties: {} }] as Array<Partial<ImageEntry>>) {
    t.notOk(sameListing(e, ['k'], { ...e, ...over }, ['k']), JSON.stringify(over))
  }
  t.notOk(sameListing(e, ['k1'], e, ['k2']), 'endorsers (a key rotation)')
})

/** A state store on a real LevelDB in a temporary directory, closed and removed after the test. */
async function storeIn (t: { teardown: (fn: () => unknown) => void }): Promise<{ db: AgentDb, store: StateStore }> {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-refresh-db-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const db = await openDb(join(dir, 'db'))
  t.teardown(async () => { await db.close() })
  return { db, store: new StateStore(db.sub('images')) }
}

t.test('a refresh that fails stays on the line, with backoff; the next listing is tried at once', async (t) => {
  const { db, store } = await storeIn(t)
  const log = pino({ level: 'silent' })
  const seen: TargetImage[] = []
  let refuse = true
  const target = {
    name: 'd',
    refresh: async (img: TargetImage) => { seen.push(img); if (refuse) throw new ImgdistError('IO_ERROR', 'the disk is away') }
  } as unknown as Target
  const plain = { name: 'p' } as unknown as Target // a target without refresh(): nothing to bring up to date
  const refresh = new ListingRefresh({ store, targets: [target, plain], log, backoff: () => ({ initialMs: 1000, maxMs: 60_000 }) })
  const rec = newRecord('c', entryOf(), 1, ['k1'])
  const at = new Date().toISOString()
  rec.state = 'registered'
  rec.targets = { d: { state: 'registered', ref: '/t/x.img', at }, p: { state: 'registered', ref: 'p1', at } }
  await store.put(rec)
  const replace = async (): Promise<void> => { t.fail('the same bytes are not a new release') }

  await syncCatalogue(catalogueOf(2, [entryOf({ version: '1.1', properties: { q: '2' } })]), { store, log, replace })
  t.match(rec.targets.d?.outdated, { version: '1', properties: ['p'], attempts: 0 }, 'the line says what the image still shows')
  t.equal(rec.entry.version, '1.1')

  const now = Date.now()
  await refresh.refresh(rec, now)
  t.equal(seen.length, 1)
  t.match(seen[0], { entry: { version: '1.1' }, formerProperties: ['p'] }, 'the target is told the new listing and what the old one set')
  t.match(rec.targets.d, { state: 'registered', error: { code: 'IO_ERROR' }, outdated: { attempts: 1, nextAttemptAt: now + 1000 } })
  t.notOk(rec.targets.p?.outdated, 'a target without refresh() is not held outdated')
  t.equal(formatTargets(rec.targets), 'd registered /t/x.img (still shows 1); p registered p1', 'imgdist-agent images says what the image still shows')
  await refresh.refresh(rec, now + 500)
  t.equal(seen.length, 1, 'not again before the backoff is over')
  await refresh.refresh(rec, now + 1000)
  t.match(rec.targets.d?.outdated, { attempts: 2, nextAttemptAt: now + 1000 + 2000 }, 'the backoff doubles')

  // another listing meanwhile: still what the image shows, and tried at once
  await syncCatalogue(catalogueOf(3, [entryOf({ version: '1.2', properties: { q: '3' } })]), { store, log, replace })
  t.match(rec.targets.d?.outdated, { version: '1', properties: ['p'], attempts: 0 })
  t.equal(rec.targets.d?.outdated?.nextAttemptAt, undefined)
  refuse = false
  await refresh.refresh(rec, now + 1500)
  t.equal(seen.length, 3)
  t.notOk(rec.targets.d?.outdated, 'up to date')
  t.notOk(rec.targets.d?.error, 'the failed attempt\'s error is over')
  const reloaded = new StateStore(db.sub('images'))
  await reloaded.load()
  t.same(reloaded.get('c', 'x')?.targets.d, rec.targets.d, 'what LevelDB holds')
})

t.test('retired while still showing an earlier listing: the retired line is not held outdated', async (t) => {
  const { store } = await storeIn(t)
  const target = { name: 'd', retire: async () => {} } as unknown as Target
  const policy = { retire: 'deactivate', retireGraceMs: 0 } as unknown as ResolvedPolicy
  const retirement = new Retirement({ store, targets: [target], log: pino({ level: 'silent' }), policy: () => policy })
  const rec = newRecord('c', entryOf({ version: '2' }), 2, ['k1'])
  rec.state = 'registered'
  rec.unwantedSince = Date.now()
  rec.targets = { d: { state: 'registered', ref: '/t/x.img', at: new Date().toISOString(), outdated: { since: 'x', version: '1', properties: [], attempts: 1 }, error: { code: 'IO_ERROR', message: 'm' } } }
  await store.put(rec)
  await retirement.retire(rec, Date.now())
  t.equal(rec.state, 'retired')
  t.same(Object.keys(rec.targets.d ?? {}).sort(), ['at', 'ref', 'shownProperties', 'state'], 'neither the refresh\'s error nor its listing stays on a retired line')
  t.same(rec.targets.d?.shownProperties, [], 'what it shows is the earlier listing\'s properties, not the current one\'s')

  // up to date when retired: it shows the current listing's properties, under the settings recorded
  const other = newRecord('c', entryOf({ id: 'y' }), 2, ['k1'])
  other.state = 'registered'
  other.unwantedSince = Date.now()
  other.targets = { d: { state: 'registered', ref: '/t/y.img', at: new Date().toISOString(), settings: { tags: ['x'] } } }
  await store.put(other)
  await retirement.retire(other, Date.now())
  t.match(other.targets.d, { state: 'retired', ref: '/t/y.img', settings: { tags: ['x'] }, shownProperties: ['p'] }, 'kept for a restore (TargetImage.formerSettings, formerProperties)')
})

t.test('a target whose settings changed since registration: its lines are refreshed with what they were registered under', async (t) => {
  const { db, store } = await storeIn(t)
  const seen: TargetImage[] = []
  const mk = (settings: Record<string, unknown>): Target => ({ name: 'g', settings, refresh: async (img: TargetImage) => { seen.push(img) } }) as unknown as Target
  const before = { properties: { a: '1' }, tags: ['x'] }
  const after = { tags: ['y'], properties: { b: '2' } }
  const at = new Date().toISOString()
  const put = async (id: string, line: Record<string, unknown>): Promise<void> => {
    const rec = newRecord('c', entryOf({ id }), 1, ['k1'])
    rec.state = 'registered'
    rec.targets = { g: { state: 'registered', ref: `r-${id}`, at, ...line } }
    await store.put(rec)
  }
  await put('same', { settings: { tags: ['x'], properties: { a: '1' } } }) // the same settings, keys in another order
  await put('old', { settings: before })
  await put('unknown', {}) // registered by an agent that did not record settings
  await put('adopted', { settings: before, adopted: true })

  const now = Date.now()
  const unchanged = new ListingRefresh({ store, targets: [mk(before)], log: pino({ level: 'silent' }), backoff: () => ({ initialMs: 1000, maxMs: 60_000 }) })
  await unchanged.refresh(store.get('c', 'same') as ImageRecord, now)
  t.equal(seen.length, 0, 'settings equal as JSON values (key order aside): nothing to refresh')

  const refresh = new ListingRefresh({ store, targets: [mk(after)], log: pino({ level: 'silent' }), backoff: () => ({ initialMs: 1000, maxMs: 60_000 }) })
  for (const id of ['same', 'old', 'unknown', 'adopted']) await refresh.refresh(store.get('c', id) as ImageRecord, now)
  t.same(seen.map((i) => i.entry.id), ['same', 'old', 'unknown'], 'every line registered under other (or unknown) settings, not the adopted one')
  t.same(seen[1]?.formerSettings, before, 'the target is told the settings the image was registered under')
  t.same(seen[1]?.formerProperties, ['p'], 'and the listing it shows, unchanged')
  t.equal(seen[2]?.formerSettings, undefined, 'unknown when the line did not record them')
  const reloaded = new StateStore(db.sub('images'))
  await reloaded.load()
  for (const id of ['same', 'old', 'unknown', 'adopted']) {
    const line = reloaded.get('c', id)?.targets.g
    t.same(line?.settings, after, `${id}: the line records the settings it shows now`)
    t.notOk(line?.outdated, `${id}: up to date`)
  }
  t.equal(seen.length, 3, 'each refreshed once')
  await refresh.refresh(reloaded.get('c', 'old') as ImageRecord, now + 1)
  t.equal(seen.length, 3, 'once: the next pass finds it up to date')
})

t.test('a settings refresh that fails: the line says so, and a re-signed listing meanwhile makes it a listing refresh', async (t) => {
  const { store } = await storeIn(t)
  const log = pino({ level: 'silent' })
  const target = { name: 'g', settings: { tags: ['y'] }, refresh: async () => { throw new ImgdistError('GLANCE_FORBIDDEN', 'no') } } as unknown as Target
  const refresh = new ListingRefresh({ store, targets: [target], log, backoff: () => ({ initialMs: 1000, maxMs: 60_000 }) })
  const rec = newRecord('c', entryOf(), 1, ['k1'])
  rec.state = 'registered'
  rec.targets = { g: { state: 'registered', ref: 'r', at: new Date().toISOString(), settings: { tags: ['x'] } } }
  await store.put(rec)
  await refresh.refresh(rec, Date.now())
  t.match(rec.targets.g, { state: 'registered', settings: { tags: ['x'] }, outdated: { cause: 'settings', version: '1', attempts: 1 }, error: { code: 'GLANCE_FORBIDDEN', message: /current settings/ } })
  t.equal(formatTargets(rec.targets), 'g registered r (still shows the former target settings)')
  await syncCatalogue(catalogueOf(2, [entryOf({ version: '1.1' })]), { store, log, replace: async () => { t.fail('same bytes') } })
  t.match(rec.targets.g?.outdated, { version: '1', attempts: 0 })
  t.equal(rec.targets.g?.outdated?.cause, undefined, 'now it shows an earlier listing too')
  t.equal(formatTargets(rec.targets), 'g registered r (still shows 1)')
})

t.test('settings a reload (SIGHUP) replaces: the running refresh sees them, and a line records what its refresh applied', async (t) => {
  const { store } = await storeIn(t)
  const [s1, s2, s3] = [{ tags: ['a'] }, { tags: ['b'] }, { tags: ['c'] }]
  const applied: unknown[] = []
  const target = { name: 'g', settings: s1 as Record<string, unknown> } as unknown as { -readonly [K in keyof Target]: Target[K] }
  target.refresh = async () => {
    applied.push(target.settings)
    // a reload while the PATCH is under way: the image got the settings read when it began
    if (target.settings === s2) target.settings = s3
  }
  const refresh = new ListingRefresh({ store, targets: [target as Target], log: pino({ level: 'silent' }), backoff: () => ({ initialMs: 1000, maxMs: 60_000 }) })
  const rec = newRecord('c', entryOf(), 1, ['k1'])
  rec.state = 'registered'
  rec.targets = { g: { state: 'registered', ref: 'r', at: new Date().toISOString(), settings: { tags: ['a'] } } }
  await store.put(rec)
  const now = Date.now()
  await refresh.refresh(rec, now)
  t.same(applied, [], 'the settings it was registered under: nothing to do')
  target.settings = s2
  await refresh.refresh(rec, now)
  t.same(applied, [s2], 'the new settings are found at the next pass, without a new ListingRefresh')
  t.same(rec.targets.g?.settings, s2, 'the line records what the refresh applied, not what the reload left')
  await refresh.refresh(rec, now)
  t.same(applied, [s2, s3], 'so the next pass brings it to the settings now in force')
  t.same(rec.targets.g?.settings, s3)
  await refresh.refresh(rec, now)
  t.equal(applied.length, 2, 'and then it is up to date')
})
