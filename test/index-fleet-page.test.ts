import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { dataPaths } from '../index-server/data-dir.js'
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
})
