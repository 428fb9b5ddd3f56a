import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { dataPaths } from '../index-server/data-dir.js'
import { buildServer } from '../index-server/server.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { SiteKeys } from '../index-server/site-keys.js'
import { encodePublicKey } from '../lib/keys.js'
import { body, fakeSite, indexBytes, makeServerDir, siteReport } from './index-fixture.js'

const run = promisify(execFile)

async function chromiumPath (): Promise<string | undefined> {
  for (const name of ['chromium', 'chromium-browser']) {
    try { return (await run('sh', ['-c', `command -v ${name}`])).stdout.trim() } catch {}
  }
  return undefined
}

t.test('fleet page renders in headless Chromium (screenshot and DOM)', async (t) => {
  const chromium = await chromiumPath()
  if (chromium === undefined) { t.skip('MISSING TOOL chromium: install the Debian package chromium (test/setup/install-tools.sh)', () => {}); return }
  const { dataDir, fx } = await makeServerDir(t, { name: 'cloud-images' })
  const ids = ['alma-9.4-x86_64', 'debian-12-generic', 'ubuntu-24.04-server', 'cernvm-5.1']
  for (const id of ids) await fx.addImage(id, 64 * 1024)
  const config = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', seed: false })
  const daemon = await startIndexDaemon(config, { logger: false })
  t.teardown(async () => await daemon.close())
  const put = await fetch(daemon.url + '/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: body(await indexBytes(fx)) })
  t.equal(put.status, 200)

  const sites = new SiteKeys(dataPaths(dataDir).sitesFile)
  const geneva = fakeSite('cern-geneva')
  const hamburg = fakeSite('desy-hamburg')
  const victoria = fakeSite('uvic-victoria')
  for (const s of [geneva, hamburg, victoria]) await sites.add(s.name, encodePublicKey(s.key.publicKey))
  const gib = 1024 ** 3
  const reports = [
    siteReport(geneva, 'cloud-images', [
      { id: ids[0]!, state: 'registered', size: 2 * gib },
      { id: ids[1]!, state: 'registered', size: gib },
      { id: ids[2]!, state: 'downloading', progress: 0.63, size: 3 * gib, peers: 11 },
      { id: ids[3]!, state: 'verifying', progress: 1, size: gib }
    ], new Date(), 4),
    siteReport(hamburg, 'cloud-images', [
      { id: ids[0]!, state: 'registered', size: 2 * gib },
      { id: ids[1]!, state: 'awaiting-approval', size: gib },
      { id: ids[2]!, state: 'downloading', progress: 0.18, size: 3 * gib, peers: 5 },
      { id: ids[3]!, state: 'rejected', size: gib }
    ], new Date(), 4),
    siteReport(victoria, 'cloud-images', [
      { id: ids[0]!, state: 'failed', progress: 0.97, size: 2 * gib, error: { code: 'GLANCE_UNAVAILABLE', message: 'Glance answered 503 <Service Unavailable>' } },
      { id: ids[1]!, state: 'registering', progress: 1, size: gib },
      { id: ids[2]!, state: 'approved', size: 3 * gib }
    ], new Date(), 3)
  ]
  for (const r of reports) {
    const res = await fetch(daemon.url + '/v1/reports', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(r) })
    t.equal(res.status, 202, `report of ${r.signed.site}`)
  }

  const tmp = await mkdtemp(join(tmpdir(), 'imgdist-chromium-'))
  t.teardown(async () => await rm(tmp, { recursive: true, force: true }))
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--hide-scrollbars', `--user-data-dir=${join(tmp, 'profile')}`]
  const png = join(tmp, 'fleet.png')
  await run(chromium, [...flags, `--screenshot=${png}`, '--window-size=1280,800', daemon.url + '/'], { timeout: 90_000 })
  const bytes = await readFile(png)
  t.same([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG was produced')
  t.ok(bytes.byteLength > 10_000, `the PNG is not blank (${bytes.byteLength} bytes)`)
  if (process.env.IMGDIST_UPDATE_SCREENSHOTS === '1') await copyFile(png, join(import.meta.dirname, '..', 'docs', 'fleet.png'))

  const dom = (await run(chromium, [...flags, '--dump-dom', daemon.url + '/'], { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 })).stdout
  for (const name of ['cern-geneva', 'desy-hamburg', 'uvic-victoria', ...ids]) t.match(dom, name, `page shows ${name}`)
  for (const state of ['registered', 'downloading', 'verifying', 'awaiting-approval', 'failed', 'rejected', 'approved', 'registering']) t.match(dom, `>${state}<`, `page shows state ${state}`)
  t.match(dom, /GLANCE_UNAVAILABLE/)
  t.match(dom, /&lt;Service Unavailable&gt;/, 'error text escaped')
  t.match(dom, `index v4 expires ${fx.index.signed.expires} (in 29d)`, 'the index\'s expiry is shown')
})

const DAY = 86_400_000
const ENDORSERS = 'agents refuse it (EXPIRED) and start nothing new from it: the endorsers must sign and publish a renewed index (README, &quot;Renew before expires&quot;)'
const ROOT_HOLDERS = 'agents refuse every index under it (EXPIRED): the root key holders must sign and publish the next root version (README, &quot;rotate root keys&quot;)'

/** A server on a clock the test sets, with fx's index published at the real time (an expired one would be refused). */
async function servedCatalogue (t: Test, opts: { publish: boolean }) {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 2048)
  let now = new Date()
  const app = await buildServer({ dataDir, now: () => now })
  t.teardown(async () => await app.close())
  if (opts.publish) t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: await indexBytes(fx) })).statusCode, 200)
  const page = async (at: number): Promise<string> => {
    now = new Date(at)
    const res = await app.inject({ url: '/' })
    t.equal(res.statusCode, 200)
    return res.body
  }
  return { fx, page, rootAt: Date.parse(fx.root.signed.expires), indexAt: Date.parse(fx.index.signed.expires) }
}

/** The expiry lines under the header, one string each. */
function expiryLines (html: string): string[] {
  const strip = /<div class="expiry">(.*?)<\/div>\n/.exec(html)?.[1] ?? ''
  return [...strip.matchAll(/<div class="(exp[^"]*)">(.*?)<\/div>/g)].map((m) => `${m[1] as string}: ${m[2] as string}`)
}

t.test('fleet page: the served root and index with when they expire, unflagged while more than 3 days off', async (t) => {
  const { fx, page, rootAt, indexAt } = await servedCatalogue(t, { publish: true })
  const html = await page(indexAt - 9 * DAY)
  // whole days, rounded down: the fixture signs the index a second or so after the root, so the
  // root's distance is 344 days less that, or 343 whole days when a second boundary fell between
  const rootDays = Math.floor((rootAt - (indexAt - 9 * DAY)) / DAY)
  t.ok(rootDays === 343 || rootDays === 344, `the root expires a year after the fixture made it (${rootDays}d)`)
  t.same(expiryLines(html), [
    `exp: root v1 expires ${fx.root.signed.expires} (in ${rootDays}d)`,
    `exp: index v1 expires ${fx.index.signed.expires} (in 9d)`
  ])
  t.notMatch(html, /⚠/)
  t.match(html, /index v1 · /, 'the header still names the index')
})

t.test('fleet page: an index within 3 days of expiring is flagged, with who must act', async (t) => {
  const { fx, page, indexAt } = await servedCatalogue(t, { publish: true })
  const lines = expiryLines(await page(indexAt - 2 * DAY))
  t.equal(lines.length, 2)
  t.match(lines[0], /^exp: root v1 expires /, 'the root is not')
  t.equal(lines[1], `exp soon: <strong>⚠ index v1 expires ${fx.index.signed.expires} (in 2d)</strong>: then ${ENDORSERS}`)
  t.match(expiryLines(await page(indexAt - 3 * DAY))[1], /^exp soon: /, '3 days ahead is within 3 days')
  t.match(expiryLines(await page(indexAt - 3 * DAY - 1000))[1], /^exp: /, 'a second more is not')
})

t.test('fleet page: an expired index, and root, are flagged as expired, with who must act', async (t) => {
  const { fx, page, indexAt, rootAt } = await servedCatalogue(t, { publish: true })
  const rootDays = Math.floor((rootAt - indexAt) / DAY) // 335, or 334 when the index was signed in a later second than the root
  t.same(expiryLines(await page(indexAt)), [
    `exp: root v1 expires ${fx.root.signed.expires} (in ${rootDays}d)`,
    `exp expired: <strong>⚠ index v1 expired ${fx.index.signed.expires} (0s ago)</strong>: ${ENDORSERS}`
  ], 'at the very second')
  t.same(expiryLines(await page(rootAt + 2 * DAY)), [
    `exp expired: <strong>⚠ root v1 expired ${fx.root.signed.expires} (2d ago)</strong>: ${ROOT_HOLDERS}`,
    `exp expired: <strong>⚠ index v1 expired ${fx.index.signed.expires} (337d ago)</strong>: ${ENDORSERS}`
  ])
})

t.test('fleet page: before the first index only the root\'s expiry is shown', async (t) => {
  const { fx, page, rootAt } = await servedCatalogue(t, { publish: false })
  const html = await page(rootAt - DAY)
  t.match(html, /index not published/)
  t.same(expiryLines(html), [`exp soon: <strong>⚠ root v1 expires ${fx.root.signed.expires} (in 24h)</strong>: then ${ROOT_HOLDERS}`])
})

t.test('fleet page: the expiry lines are escaped like every other string', async (t) => {
  const { page, indexAt } = await servedCatalogue(t, { publish: true })
  const html = await page(indexAt + DAY)
  t.match(html, /\(README, &quot;Renew before expires&quot;\)/)
  t.notMatch(html, /"Renew before expires"/, 'the advice\'s quotes are escaped')
})
