import { join } from 'node:path'
import t from 'tap'
import { buildServer } from '../index-server/server.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { rfc3339 } from '../lib/duration.js'
import { indexBytes, makeServerDir } from './index-fixture.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'

/**
 * When a site's catalogue goes out of force is visible there before it happens: `status`, its
 * JSON and a gauge give the date (the earlier of root and index expires), and once it has
 * passed they say EXPIRED and how long ago; the log no longer says the catalogue is kept.
 * A real agent process against a real index server.
 */

type Status = { catalogues: Array<{ name: string, indexVersion: number, expires?: string, error?: { code: string } }> }
const YAML = { 'content-type': 'application/yaml' }

t.test('the accepted catalogue\'s expiry in status (human and JSON) and metrics, before and after it falls', async (t) => {
  const { dir, dataDir, fx } = await makeServerDir(t)
  await fx.addImage('exp-a', 2048)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const publish = async (): Promise<void> => {
    const put = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })
    t.equal(put.statusCode, 200, put.body)
  }
  await publish()
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(dir, 'site'), 'site-exp', {
    subscriptions: [{ url: `${url}/v1/index.yaml`, root: fx.rootPath, pollInterval: '1s' }],
    policy: { deny: [{ id: '*' }] } // the catalogue only: nothing to fetch
  })
  const gauge = async (): Promise<number | undefined> => {
    const m = /\nimgdist_agent_catalogue_expires_seconds\{catalogue="test-catalogue"\} (\d+)\n/.exec(await (await fetch(`${a.api}/metrics`)).text())
    return m === null ? undefined : Number(m[1])
  }

  // v1 expires in 30 days, its root in a year: the index's date is the catalogue's
  const v1 = fx.index.signed.expires
  const s1 = await waitFor('v1 accepted', async () => { const s = await a.get<Status>('/v1/status'); return s.catalogues[0]?.indexVersion === 1 ? s : undefined })
  t.equal(s1.catalogues[0]?.expires, v1, '/v1/status: expires per catalogue, RFC 3339')
  t.equal(await gauge(), Date.parse(v1) / 1000, 'imgdist_agent_catalogue_expires_seconds')
  t.match(await a.cli('status'), new RegExp(`\\ntest-catalogue +v1 +v1 +\\S+ +${v1} \\(in 29d\\) `), 'imgdist-agent status: the date and what is left')

  // the endorsers let it lapse: v2 expires in a few seconds, and nothing follows it
  const v2 = rfc3339(new Date(Date.now() + 8000)) // room to be accepted first on a busy machine
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: v2 })))
  await publish()
  await waitFor('v2 accepted', async () => (await a.get<Status>('/v1/status')).catalogues[0]?.indexVersion === 2, 20_000)
  await waitFor('v2 expired at the site', async () => (await a.get<Status>('/v1/status')).catalogues[0]?.error?.code === 'EXPIRED', 30_000)
  const s2 = await a.get<Status>('/v1/status')
  t.equal(s2.catalogues[0]?.expires, v2, 'the date stays once it has passed')
  t.equal(await gauge(), Date.parse(v2) / 1000, 'and so does the gauge: an alert on it keeps firing')
  t.match(await a.cli('status'), new RegExp(`\\ntest-catalogue +v1 +v2 +\\S+ +EXPIRED \\d+s ago \\(${v2}\\) `), 'status says EXPIRED and since when')
  const polled = await waitFor('a failed poll logged', async () => a.logs.find((l) => l.includes('catalogue poll failed')), 20_000)
  t.match(JSON.parse(polled), { level: 40, code: 'EXPIRED', expires: v2, msg: 'catalogue poll failed; the accepted catalogue has expired: nothing new is acted on until a current index is accepted' })
  t.notOk(a.logs.some((l) => l.includes('keeping the last good catalogue')), 'never that the expired catalogue is kept')
})
