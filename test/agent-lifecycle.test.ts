import { createHash } from 'node:crypto'
import { access, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { editIndex, upsertImage } from '../lib/catalogue-edit.js'
import { rfc3339 } from '../lib/duration.js'
import { openDb } from '../agent/db.js'
import { Reconciler } from '../agent/reconciler.js'
import { StateStore } from '../agent/state-store.js'
import { startSeeder } from './helpers/agent-origin.js'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import { startIndexServer } from './helpers/agent-index-server.js'
import { agentFleet, imagesOf, waitFor, writeAgentConfig, type AgentProc, type ImageViewLite } from './helpers/agent-proc.js'

/**
 * An image's life at a site when the catalogue or the site changes its mind on the way (DESIGN.md
 * §4): new releases, policy reloads, expiry, re-listing, pause. Real agents, a real origin.
 */

const exists = async (p: string): Promise<boolean> => await access(p).then(() => true, () => false)
const sha512Of = async (p: string): Promise<string> => await readFile(p).then((b) => createHash('sha512').update(b).digest('hex'), () => 'none')
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const indexVersionOf = async (a: AgentProc): Promise<number | undefined> =>
  (await a.get<{ catalogues: Array<{ indexVersion: number }> }>('/v1/status')).catalogues[0]?.indexVersion

t.test('a release replaced mid-download: the old job stops and the new release is fetched and registered', async (t) => {
  const { fx, origin, entry: v1, seeder: s1, startSite } = await seededOrigin(t, 'imgdist-midflight-', { id: 'os-b', size: 4 * 1024 * 1024, pieceLength: 64 * 1024, uploadLimit: 512 * 1024 })
  const a = await startSite('site-m', { policy: { retire: 'keep', retireGrace: '1h' } })
  await imageWhere(t, a, 'v1 downloading', (i) => i.state === 'downloading' && i.progress > 0.1)
  // the origin withdraws v1 (nobody seeds it any more) and publishes v2 under the same id
  await s1.close()
  const v2 = await fx.addImage('os-b', 256 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  t.not(v2.sha512, v1.sha512)
  const s2 = await startSeeder(fx, [v2.id])
  t.teardown(s2.close)
  const end = await imageWhere(t, a, 'v2 settled', (i) => i.id === 'os-b' && (i.state === 'registered' || i.state === 'failed'), 40_000)
  t.equal(end.state, 'registered', 'the new release does not wait behind the superseded job')
  t.equal(await sha512Of(join(a.dir, 'images', 'os-b.img')), v2.sha512, 'the registered file is v2, not the superseded v1')
  await sleep(2000)
  t.equal((await imagesOf(a)).find((i) => i.id === 'os-b')?.state, 'registered', 'and nothing of the old job writes v1 back')
  await a.stop('SIGTERM')
})

t.test('with a retire grace, a new release is registered at once; only the old one\'s removal waits', async (t) => {
  const { fx, origin, seeder: s1, startSite } = await seededOrigin(t, 'imgdist-grace-', { id: 'os-a', size: 256 * 1024, pieceLength: 16 * 1024 })
  const a = await startSite('site-g', { policy: { retire: 'deactivate', retireGrace: '1h' } })
  await imageWhere(t, a, 'v1 registered', (i) => i.state === 'registered')
  await s1.close()
  const v2 = await fx.addImage('os-a', 256 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  const s2 = await startSeeder(fx, [v2.id])
  t.teardown(s2.close)
  await waitFor('v2 registered', async () => await sha512Of(join(a.dir, 'images', 'os-a.img')) === v2.sha512, 30_000)
    .catch(async (err) => { t.comment(await a.cli('images')); throw err })
  // the file is in place a moment before the record says so (the sidecar is written in between)
  const v2rec = await imageWhere(t, a, 'v2 recorded as registered', (i) => i.id === 'os-a' && i.state === 'registered', 10_000)
  t.equal(v2rec.state, 'registered')
  t.notOk(await exists(join(a.dir, 'images', 'os-a.img.retired')), 'retiring v1 (after its grace) will not touch v2\'s file')
  await a.stop('SIGTERM')
})

t.test('a retired image the catalogue lists again (expiry extended) is registered again', async (t) => {
  const { fx, entry, startSite } = await seededOrigin(t, 'imgdist-readd-', { id: 'short', size: 128 * 1024, pieceLength: 16 * 1024, expires: rfc3339(new Date(Date.now() + 8000)) })
  const a = await startSite('site-e', { policy: { retire: 'deactivate' } })
  await imageWhere(t, a, 'registered', (i) => i.state === 'registered')
  await imageWhere(t, a, 'retired at expiry', (i) => i.state === 'retired', 20_000)
  t.ok(await exists(join(a.dir, 'images', 'short.img.retired')), 'deactivated in the target')
  // the endorser re-signs the same bytes with a later expiry
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, { ...entry, expires: rfc3339(new Date(Date.now() + 86400_000)) })))
  await waitFor('index seen', async () => await indexVersionOf(a) === fx.index.signed.version)
  const again = await imageWhere(t, a, 'registered again', (i) => i.id === 'short' && i.state === 'registered', 30_000)
  t.equal(await sha512Of(join(a.dir, 'images', 'short.img')), entry.sha512, 'and visible in the target again')
  t.match(again.reason, /restored where it was retired/, 'moved back, not downloaded and copied again')
  t.notOk(await exists(join(a.dir, 'images', 'short.img.retired')), 'no retired copy left beside it')
  await a.stop('SIGTERM')
})

t.test('restored in one target while another downloads it, then revoked again: the restored one is retired again', async (t) => {
  const { fx, entry, dir, startSite } = await seededOrigin(t, 'imgdist-restore2-', { id: 'twice', size: 4 * 1024 * 1024, pieceLength: 64 * 1024, uploadLimit: 512 * 1024 })
  const targets = ['a', 'b'].map((name) => ({ name, type: 'directory', path: join(dir, name) }))
  const a = await startSite('site-r', { targets, policy: { retire: 'deactivate', retireGrace: '0' } })
  const file = (target: string, ext = ''): string => join(dir, target, `twice.img${ext}`)
  await imageWhere(t, a, 'registered', (i) => i.state === 'registered', 40_000)
  await fx.revoke(entry.id, 'first withdrawal')
  await imageWhere(t, a, 'retired', (i) => i.state === 'retired', 20_000)
  await rm(file('b', '.retired')) // b cannot restore: it needs the bytes again, at 512 KiB/s
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, entry)))
  await waitFor('restored in a', async () => await exists(file('a')), 20_000)
  await imageWhere(t, a, 'downloading for b', (i) => i.state === 'downloading')
  await fx.revoke(entry.id, 'second withdrawal')
  await imageWhere(t, a, 'retired again', (i) => i.state === 'retired', 20_000)
  t.notOk(await exists(file('a')), 'what a restored is retired again, not left in use')
  t.ok(await exists(file('a', '.retired')), 'moved aside again')
  t.notOk(await exists(file('b')), 'b never got it')
  await a.stop('SIGTERM')
})

t.test('listed again while its target cannot take it: the line says failed, and the retired image is restored once the target is back', async (t) => {
  const { fx, entry, dir, startSite } = await seededOrigin(t, 'imgdist-restore-fail-', { id: 'back', size: 256 * 1024, pieceLength: 16 * 1024 })
  const target = join(dir, 'tgt')
  const a = await startSite('site-f', { targets: [{ name: 'd', type: 'directory', path: target }], policy: { retire: 'deactivate', retireGrace: '0' }, retry: { initial: '1s', max: '2s' } })
  type Line = { state: string, ref?: string, retiredRef?: string, error?: { code: string } }
  const lineOf = (i: ImageViewLite): Line | undefined => (i as unknown as { targets: Record<string, Line> }).targets.d
  await imageWhere(t, a, 'registered', (i) => i.state === 'registered')
  await fx.revoke(entry.id, 'withdrawn for a while')
  await imageWhere(t, a, 'retired', (i) => i.state === 'retired', 20_000)
  const retiredFile = join(target, 'back.img.retired')
  // the target's directory is away (a file in its place) when the catalogue lists the bytes again
  await rename(target, `${target}.away`)
  await writeFile(target, 'not a directory')
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, entry)))
  const failing = await imageWhere(t, a, 'the target step failing', (i) => i.id === 'back' && lineOf(i)?.error !== undefined, 30_000)
  t.match(lineOf(failing), { state: 'failed', retiredRef: retiredFile }, 'failed, not `retired` with an error; where the retired image is, kept')
  // unwanted again before the target took it back: retired where it still is
  await fx.revoke(entry.id, 'withdrawn again')
  const again = await imageWhere(t, a, 'retired again', (i) => i.id === 'back' && i.state === 'retired', 20_000)
  t.match(lineOf(again), { state: 'retired', ref: retiredFile }, 'the line is `retired` again, at the retired image')
  t.notOk(lineOf(again)?.error, 'without the failed attempt\'s error')
  await rm(target)
  await rename(`${target}.away`, target)
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, entry)))
  const back = await imageWhere(t, a, 'registered once the target is back', (i) => i.id === 'back' && i.state === 'registered', 30_000)
  t.match(back.reason, /restored where it was retired/, 'the retired image was moved back, not copied again')
  t.match(lineOf(back), { state: 'registered', ref: join(target, 'back.img') })
  t.notOk(lineOf(back)?.retiredRef, 'nothing retired is left to restore')
  t.equal(await sha512Of(join(target, 'back.img')), entry.sha512)
  t.notOk(await exists(retiredFile))
  await a.stop('SIGTERM')
})

t.test('a policy reload (SIGHUP) that denies an image mid-download stops it', async (t) => {
  const { entry, sub, startSite } = await seededOrigin(t, 'imgdist-hup-', { id: 'later-denied', size: 4 * 1024 * 1024, pieceLength: 64 * 1024, uploadLimit: 512 * 1024 })
  const a = await startSite('site-h')
  await imageWhere(t, a, 'downloading', (i) => i.state === 'downloading' && i.progress > 0.1)
  await writeAgentConfig(a.dir, 'site-h', { subscriptions: sub, policy: { deny: [{ id: 'later-*' }] } })
  a.proc.kill('SIGHUP')
  await waitFor('reloaded', async () => a.logs.some((l) => l.includes('config reloaded')), 10_000)
  const end = await imageWhere(t, a, 'settled', (i) => i.state === 'registered' || i.state === 'rejected')
  t.equal(end.state, 'rejected', `denied in flight: ${end.reason ?? ''}`)
  t.notOk(await exists(join(a.dir, 'images', `${entry.id}.img`)), 'no denied image in the target')
  await sleep(3000)
  const later = (await imagesOf(a)).find((i) => i.id === entry.id)
  t.equal(later?.state, 'rejected', 'and it stays so')
  t.equal(later?.seeding, false, 'its torrent left the swarm')
  await a.stop('SIGTERM')
})

t.test('a failed image that policy now denies is not retried into the target', async (t) => {
  const { dir, entry, sub, startSite } = await seededOrigin(t, 'imgdist-hupf-', { id: 'was-ok', size: 128 * 1024, pieceLength: 16 * 1024 })
  const blocker = join(dir, 'blocker')
  await writeFile(blocker, 'a file where the target directory should be')
  const site = { targets: [{ name: 'dir', type: 'directory', path: join(blocker, 'images') }], retry: { initial: '2s', max: '2s' } }
  const a = await startSite('site-f', site)
  await imageWhere(t, a, 'failed at registration', (i) => i.state === 'failed')
  await writeAgentConfig(a.dir, 'site-f', { subscriptions: sub, ...site, policy: { deny: [{ id: 'was-*' }] } })
  a.proc.kill('SIGHUP')
  await waitFor('reloaded', async () => a.logs.some((l) => l.includes('config reloaded')), 10_000)
  // the operator fixes the directory: a retry now would register it
  await rm(blocker); await mkdir(join(blocker, 'images'), { recursive: true })
  const end = await imageWhere(t, a, 'settled', (i) => i.state === 'registered' || i.state === 'rejected', 30_000)
  t.equal(end.state, 'rejected', `policy is asked before a retry: ${end.reason ?? ''}`)
  t.notOk(await exists(join(blocker, 'images', `${entry.id}.img`)))
  await a.stop('SIGTERM')
})

t.test('an index that expires while the server answers 304 is out of force: status says EXPIRED, nothing new starts', async (t) => {
  const { dir, fx, entry, startSite, startAgent } = await seededOrigin(t, 'imgdist-expiry-', { id: 'img-a', size: 256 * 1024, pieceLength: 16 * 1024 }, { watch: false })
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 6000)) })))
  const a = await startSite('site-x', { policy: { approval: 'manual' } })
  await imageWhere(t, a, 'awaiting approval', (i) => i.state === 'awaiting-approval')
  const st = await waitFor('expired in status', async () => {
    const c = (await a.get<{ catalogues: Array<{ error?: { code: string }, pollErrors: number }> }>('/v1/status')).catalogues[0]
    // the expiry itself shows at once; the polls that then find only the expired index count as failed
    return c?.error?.code === 'EXPIRED' && c.pollErrors > 0 ? c : undefined
  }, 20_000)
  t.equal(st.error?.code, 'EXPIRED')
  await a.cli('approve', entry.id)
  const reg = await waitFor('registered', async () => (await imagesOf(a)).find((i) => i.state === 'registered' || i.state === 'downloading'), 6000).catch(() => undefined)
  t.notOk(reg, 'an approval under an expired index does not start a download')
  t.match((await imagesOf(a)).find((i) => i.id === entry.id)?.reason, /current catalogue/, 'the image says what it waits for')
  await a.stop('SIGTERM')
  const b = await startAgent(join(dir, 'site'), 'site-x', {}, a.configPath)
  const st2 = await b.get<{ catalogues: Array<{ error?: { code: string } }> }>('/v1/status')
  t.equal(st2.catalogues[0]?.error?.code, 'EXPIRED', 'the same as after a restart')
  // a current index puts the catalogue back in force
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 86400_000)) })))
  await imageWhere(t, b, 'registered under a current index', (i) => i.state === 'registered', 30_000)
  await b.stop('SIGTERM')
})

t.test('an index that expires under running downloads stops them, registers nothing; a fresh index resumes them', async (t) => {
  // the real index server, its origin seed held to 256 KiB/s, shared by the two downloads
  const srv = await startIndexServer(t, { uploadLimit: 256 * 1024 })
  await srv.addImage('steady', 64 * 1024, 16 * 1024)
  const slow = await srv.addImage('slow', 3 * 1024 * 1024, 64 * 1024)
  const dropped = await srv.addImage('dropped', 2 * 1024 * 1024, 64 * 1024)
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(srv.dir, 'site'), 'site-ex', {
    subscriptions: [{ url: srv.indexUrl, root: srv.fx.rootPath, pollInterval: '1s' }],
    swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false, maxConcurrentDownloads: 3 }
  })
  const img = async (id: string): Promise<ImageViewLite | undefined> => (await imagesOf(a)).find((i) => i.id === id)
  const moving = async (id: string): Promise<boolean> => { const i = await img(id); return i?.state === 'downloading' && i.progress > 0.02 }
  await waitFor('steady registered, the others under way', async () => (await img('steady'))?.state === 'registered' && await moving('slow') && await moving('dropped'))
  // the endorsers let the catalogue lapse: an index that expires in 3 s, and nothing after it
  await srv.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 3000)) })))
  await waitFor('index seen', async () => await indexVersionOf(a) === srv.fx.index.signed.version)
  for (const id of ['slow', 'dropped']) {
    const held = await imageWhere(t, a, `${id} stopped`, (i) => i.id === id && i.state !== 'downloading', 20_000)
    t.equal(held.state, 'failed', `${id} stopped`)
    t.equal(held.error?.code, 'CATALOGUE_EXPIRED', held.error?.message ?? 'no error')
    t.ok(held.progress < 1, `part way (${(held.progress * 100).toFixed(0)}%)`)
  }
  const stopped = await img('slow')
  t.match(await a.cli('images'), /slow .*CATALOGUE_EXPIRED: stopped: catalogue test-catalogue is no longer in force/, 'images shows why')
  t.equal((await a.get<{ catalogues: Array<{ error?: { code: string } }> }>('/v1/status')).catalogues[0]?.error?.code, 'EXPIRED', 'status shows the catalogue expired')
  await sleep(3000)
  const later = await img('slow')
  t.equal(later?.state, 'failed', 'it stays stopped')
  t.equal(later?.bytesFromPeers, stopped?.bytesFromPeers, 'and fetches nothing more')
  t.notOk(await exists(join(a.dir, 'images', 'slow.img')), 'nothing registered under the expired catalogue')
  t.ok(await exists(join(a.dir, 'data', 'downloads', dropped.infoHash)), 'the stopped downloads keep their pieces')
  const kept = await img('steady')
  t.equal(kept?.state, 'registered', 'an image registered before stays registered')
  t.equal(kept?.seeding, true, 'and is still seeded')
  // a fresh index puts the catalogue back in force, without one of the stopped images
  await srv.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, images: s.images.filter((e) => e.id !== 'dropped'), expires: rfc3339(new Date(Date.now() + 86400_000)) })))
  const done = await imageWhere(t, a, 'slow registered', (i) => i.id === 'slow' && i.state === 'registered', 40_000)
  t.ok(done.resumedBytes > 0, `slow carried on from the pieces fetched before the expiry (${done.resumedBytes} bytes)`)
  t.equal(await sha512Of(join(a.dir, 'images', 'slow.img')), slow.sha512, 'the registered file is the image')
  t.equal((await img('dropped'))?.state, 'retired', 'the image the fresh index dropped is retired')
  t.notOk(await exists(join(a.dir, 'data', 'downloads', dropped.infoHash)), 'and its pieces are deleted')
  await a.stop('SIGTERM')
})

t.test('pause while a job fetches its .torrent: the torrent it adds afterwards is paused too', async (t) => {
  const { fx, origin, startSite } = await seededOrigin(t, 'imgdist-pause-race-', { id: 'px', size: 512 * 1024, pieceLength: 16 * 1024 })
  // a front for the origin whose .torrent answers wait until the agent is paused
  let release = (): void => {}
  const paused = new Promise<void>((resolve) => { release = resolve })
  const proxy = createServer((req, res) => {
    const go = (): void => {
      fetch(`http://127.0.0.1:${origin.port}${req.url ?? '/'}`, { headers: req.headers['if-none-match'] !== undefined ? { 'if-none-match': req.headers['if-none-match'] } : {} })
        .then(async (r) => { const h: Record<string, string> = {}; r.headers.forEach((v, k) => { if (k !== 'content-length' && k !== 'transfer-encoding') h[k] = v }); res.writeHead(r.status, h).end(Buffer.from(await r.arrayBuffer())) })
        .catch(() => { res.writeHead(502).end() })
    }
    if (req.url?.includes('/torrents/') === true) void paused.then(go); else go()
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { release(); proxy.closeAllConnections(); await new Promise((resolve) => proxy.close(resolve)) })
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/v1/index.yaml`
  const a = await startSite('site-pz', { subscriptions: [{ url, root: fx.rootPath, pollInterval: '1s', watch: false }] })
  await imageWhere(t, a, 'approved (fetching its torrent)', (i) => i.state === 'approved')
  t.match(await a.cli('pause'), /paused/)
  release()
  await imageWhere(t, a, 'torrent added', (i) => i.state === 'downloading' || i.state === 'registered')
  const reg = await waitFor('registered while paused', async () => (await imagesOf(a)).find((i) => i.state === 'registered'), 8000).catch(() => undefined)
  t.notOk(reg, 'nothing downloads while paused')
  t.match(await a.cli('resume'), /resumed/)
  await imageWhere(t, a, 'registered after resume', (i) => i.state === 'registered', 30_000)
  await a.stop('SIGTERM')
})

t.test('the reconciler keeps when the operator paused, across a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-paused-at-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const log = pino({ level: 'silent' })
  // no images and no catalogues: the swarm is only paused and resumed
  const swarm = { pauseAll: () => {}, resumeAll: () => {} }
  const cfg = { dataDir: dir, swarm: { maxConcurrentDownloads: 1 }, cache: { maxBytes: 1e12 }, policy: {} }
  const open = async (): Promise<{ r: Reconciler, close: () => Promise<void> }> => {
    const db = await openDb(dir)
    const store = new StateStore(db.sub('images'))
    const r = new Reconciler(cfg as never, { store, swarm: swarm as never, targets: [], pollers: [], log, http: undefined as never, settings: db.sub('settings') })
    await r.start()
    return { r, close: async () => { await r.close(); await db.close() } }
  }
  let { r, close } = await open()
  t.equal(r.pausedAt, undefined)
  const before = Date.now()
  t.equal(await r.pause(), true, 'a pause changes a running agent')
  const at = r.pausedAt
  t.ok(at !== undefined && Date.parse(at) >= before - 1000, `pausedAt ${String(at)}`)
  t.equal(await r.pause(), false, 'pausing again changes nothing')
  t.equal(r.pausedAt, at, 'pausing again keeps the first time')
  await close();
  ({ r, close } = await open())
  t.equal(r.paused, true)
  t.equal(r.pausedAt, at, 'the restarted agent knows since when')
  t.equal(await r.resume(), true, 'a resume changes a paused agent')
  t.equal(r.pausedAt, undefined)
  t.equal(await r.resume(), false, 'resuming again changes nothing')
  await close();
  ({ r, close } = await open())
  t.equal(r.paused, false)
  t.equal(r.pausedAt, undefined)
  await close()
})
