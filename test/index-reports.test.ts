import t from 'tap'
import { SiteKeys } from '../index-server/site-keys.js'
import { buildServer } from '../index-server/server.js'
import { dataPaths } from '../index-server/data-dir.js'
import { encodePublicKey } from '../lib/keys.js'
import { signReport } from '../lib/report.js'
import { fakeSite, indexBytes, indexCli, makeServerDir, siteReport } from './index-fixture.js'

const JSON_CT = { 'content-type': 'application/json' }

t.test('SITE_UNKNOWN names the command that registers the site, and it works as written once DIR and PUBKEY are filled in', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const site = fakeSite('site-new')
  const refused = await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(siteReport(site, 'test-catalogue', [], new Date(Date.now() - 1000))) })
  t.equal(refused.statusCode, 403)
  const { code, message } = refused.json() as { code: string, message: string }
  t.equal(code, 'SITE_UNKNOWN')
  t.equal(message, 'site "site-new" is not registered here; the index operator runs: imgdist-index sites add site-new PUBKEY --data-dir DIR')
  // the placeholders are those of "imgdist-index sites --help"
  const help = (await indexCli(['sites', '--help'])).stdout
  t.match(help, 'imgdist-index sites add NAME PUBKEY|FILE.pub [--replace] --data-dir DIR')
  const command = (message.split('runs: ')[1] ?? '').split(' ')
  t.equal(command[0], 'imgdist-index')
  const filled = command.slice(1).map((w) => w === 'DIR' ? dataDir : w === 'PUBKEY' ? encodePublicKey(site.key.publicKey) : w)
  const run = await indexCli(filled)
  t.equal(run.code, 0, run.stderr)
  const accepted = await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(siteReport(site, 'test-catalogue', [])) })
  t.equal(accepted.statusCode, 202, accepted.body)
})

t.test('signed reports: accepted from registered sites, refused otherwise, kept across restarts', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 2048)
  await fx.addImage('img-b', 2048)
  const alpha = fakeSite('site-alpha')
  const stranger = fakeSite('site-unknown')
  const sites = new SiteKeys(dataPaths(dataDir).sitesFile)
  await sites.add(alpha.name, encodePublicKey(alpha.key.publicKey))
  let app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: await indexBytes(fx) })).statusCode, 200)

  const t0 = Date.now()
  const first = siteReport(alpha, 'test-catalogue', [{ id: 'img-a', state: 'registered' }, { id: 'img-b', state: 'downloading', progress: 0.4 }], new Date(t0 - 2000))
  const ok = await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(first) })
  t.equal(ok.statusCode, 202, ok.body)
  t.same(ok.json(), { accepted: true, site: 'site-alpha' })

  const forged = structuredClone(first)
  forged.signed.sent = new Date(t0 - 1000).toISOString().replace(/\.\d+Z$/, 'Z')
  const signedByOther = signReport({ ...first.signed, sent: forged.signed.sent }, stranger.key)
  const unknown = siteReport(stranger, 'test-catalogue', [{ id: 'img-a', state: 'listed' }])
  const cases: Array<[string, string | Buffer, Record<string, string>, number, string]> = [
    ['unknown site', JSON.stringify(unknown), JSON_CT, 403, 'SITE_UNKNOWN'],
    ['bad signature', JSON.stringify(forged), JSON_CT, 403, 'SIGNATURE_INVALID'],
    ['signed by another key', JSON.stringify(signedByOther), JSON_CT, 403, 'SIGNATURE_MISSING'],
    ['unsigned', JSON.stringify({ signed: first.signed, signatures: [] }), JSON_CT, 400, 'SCHEMA_INVALID'],
    ['replayed', JSON.stringify(first), JSON_CT, 409, 'ROLLBACK'],
    ['clock far off', JSON.stringify(siteReport(alpha, 'test-catalogue', [], new Date(t0 + 3600_000))), JSON_CT, 422, 'EXPIRED'],
    ['schema', JSON.stringify({ signed: { type: 'report' }, signatures: [] }), JSON_CT, 400, 'SCHEMA_INVALID'],
    ['not JSON', '{"signed":', JSON_CT, 400, 'BAD_REQUEST'],
    ['wrong content type', JSON.stringify(first), { 'content-type': 'application/yaml' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['text/plain', JSON.stringify(first), { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['too large', Buffer.alloc(1024 * 1024 + 1, 0x20), JSON_CT, 413, 'TOO_LARGE']
  ]
  for (const [what, payload, headers, status, code] of cases) {
    const r = await app.inject({ method: 'POST', url: '/v1/reports', headers, payload })
    t.equal(r.statusCode, status, `${what}: status`)
    t.equal(r.json().code, code, `${what}: code`)
  }
  const m = (await app.inject({ url: '/metrics' })).body
  t.match(m, /imgdist_index_reports_total\{result="refused",code="SITE_UNKNOWN"\} 1/)
  t.match(m, /imgdist_index_reports_total\{result="refused",code="TOO_LARGE"\} 1/)

  const fleet = (await app.inject({ url: '/v1/fleet' })).json()
  t.equal(fleet.catalogue, 'test-catalogue')
  t.equal(fleet.indexVersion, 2)
  t.same(fleet.images.map((i: { id: string }) => i.id), ['img-a', 'img-b'])
  t.equal(fleet.sites.length, 1)
  t.match(fleet.sites[0], { name: 'site-alpha', stale: false, indexVersion: 1, images: { 'img-a': { state: 'registered', progress: 1 }, 'img-b': { state: 'downloading', progress: 0.4 } } })
  t.same(fleet.totals.states, { registered: 1, downloading: 1 })

  // A newer report replaces the old one, and survives a restart (LevelDB).
  const second = siteReport(alpha, 'test-catalogue', [{ id: 'img-a', state: 'registered' }, { id: 'img-b', state: 'registered' }], new Date(t0))
  t.equal((await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(second) })).statusCode, 202)
  await app.close()
  app = await buildServer({ dataDir })
  const after = (await app.inject({ url: '/v1/fleet' })).json()
  t.same(after.totals.states, { registered: 2 })
  t.equal((await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(second) })).json().code, 'ROLLBACK', 'replay refused after restart too')

  // A site registered while the server runs is picked up without a restart.
  const beta = fakeSite('site-beta')
  await new SiteKeys(dataPaths(dataDir).sitesFile).add(beta.name, encodePublicKey(beta.key.publicKey))
  t.equal((await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(siteReport(beta, 'test-catalogue', [])) })).statusCode, 202)
  await app.close()
})

t.test('fleet page: HTML, escaped, stale sites, silent sites', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 2048)
  const sites = new SiteKeys(dataPaths(dataDir).sitesFile)
  const a = fakeSite('site-a')
  await sites.add(a.name, encodePublicKey(a.key.publicKey))
  await sites.add('site-silent', encodePublicKey(fakeSite('x').key.publicKey))
  let now = new Date()
  const app = await buildServer({ dataDir, now: () => now, staleAfterMs: 60_000, refreshSeconds: 7 })
  t.teardown(async () => await app.close())
  await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: await indexBytes(fx) })
  const r = siteReport(a, 'test-catalogue', [{ id: 'img-a', state: 'failed', error: { code: 'GLANCE_DOWN', message: '<script>alert(1)</script>' } }], now)
  t.equal((await app.inject({ method: 'POST', url: '/v1/reports', headers: JSON_CT, payload: JSON.stringify(r) })).statusCode, 202)
  const page = await app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'none'/)
  t.match(page.body, /<meta http-equiv="refresh" content="7">/)
  t.match(page.body, /site-a/)
  t.match(page.body, /site-silent/)
  t.match(page.body, /failed/)
  t.notMatch(page.body, /<script>/, 'reported strings are escaped')
  t.match(page.body, /&lt;script&gt;/)
  const fleet = (await app.inject({ url: '/v1/fleet' })).json()
  t.match(fleet.sites, [{ name: 'site-a', stale: false }, { name: 'site-silent', stale: true, lastSeen: null }])
  now = new Date(now.getTime() + 120_000)
  const later = (await app.inject({ url: '/v1/fleet' })).json()
  t.equal(later.sites[0].stale, true, 'no report for longer than staleAfter')
  t.equal(later.totals.staleSites, 2)
})
