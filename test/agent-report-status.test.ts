import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { buildServer } from '../index-server/server.js'
import { dataPaths } from '../index-server/data-dir.js'
import { SiteKeys } from '../index-server/site-keys.js'
import { encodePublicKey, encodeSecretKey, generateKeyPair } from '../lib/keys.js'
import { indexBytes, makeServerDir } from './index-fixture.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'

/**
 * Whether the index server hears of a site is visible at the site: a report that is not
 * delivered used to show only as a warning in the agent's log.
 */

type Status = { report?: { url: string, lastSent?: string, lastError?: string, lastErrorAt?: string }, peers: number, webSeeds: number }

t.test('report delivery shows in status and metrics: refused for an unregistered site, then delivered once it is added', async (t) => {
  const { dir, dataDir, fx } = await makeServerDir(t)
  await fx.addImage('rep-a', 2048)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const put = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: await indexBytes(fx) })
  t.equal(put.statusCode, 200, put.body)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })

  const key = generateKeyPair()
  const keyPath = join(dir, 'site-rep.key')
  await writeFile(keyPath, encodeSecretKey(key.secretKey) + '\n', { mode: 0o600 })
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(dir, 'site'), 'site-rep', {
    subscriptions: [{ url: `${url}/v1/index.yaml`, root: fx.rootPath, pollInterval: '1s' }],
    report: { url, siteKey: keyPath, interval: '1s' },
    policy: { deny: [{ id: '*' }] } // reports only: nothing to fetch
  })

  const metrics = async (): Promise<string> => await (await fetch(`${a.api}/metrics`)).text()
  const refused = await waitFor('a refused report in the status', async () => {
    const s = await a.get<Status>('/v1/status')
    return s.report?.lastError !== undefined ? s : undefined
  })
  t.equal(refused.report?.url, url)
  t.match(refused.report?.lastError, /SITE_UNKNOWN/, 'the server\'s reason')
  t.equal(refused.report?.lastSent, undefined, 'nothing delivered yet')
  t.match(await a.cli('status'), /report: NOT DELIVERED since \S+: .*SITE_UNKNOWN.*\(none delivered yet\)/, 'imgdist-agent status says so')
  // the server's code and whole message, as a person reads them, not its JSON body cut short
  t.equal(refused.report?.lastError, 'HTTP 403 SITE_UNKNOWN: site "site-rep" is not registered here; the index operator runs: imgdist-index sites add site-rep PUBKEY --data-dir DIR')
  t.match(await metrics(), /\nimgdist_agent_last_report_seconds 0\n/, 'no delivery yet: 0')

  // the operator's fix: register the site's key at the index server (it re-reads the file)
  await new SiteKeys(dataPaths(dataDir).sitesFile).add('site-rep', encodePublicKey(key.publicKey))
  const delivered = await waitFor('a delivered report', async () => {
    const s = await a.get<Status>('/v1/status')
    return s.report?.lastSent !== undefined && s.report.lastError === undefined ? s : undefined
  })
  t.ok(Date.parse(delivered.report?.lastSent ?? '') > 0)
  t.match(await a.cli('status'), new RegExp(`report: to ${url}, last delivered \\S+`))
  t.match(await metrics(), /\nimgdist_agent_last_report_seconds [1-9]\d+/, 'the time of the last delivery')
  t.match(await metrics(), /imgdist_agent_web_seeds 0/)
  t.equal(delivered.webSeeds, 0, 'web seeds counted apart from peers')
  t.notMatch(await metrics(), /\nimgdist_agent_dht_nodes /, 'with the DHT off its gauge is absent, as documented')
})
