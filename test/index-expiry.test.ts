import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { buildServer } from '../index-server/server.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { rfc3339 } from '../lib/duration.js'
import { indexBytes, makeServerDir, rootV2 } from './index-fixture.js'

/**
 * The server serves an expired root or index on (only the endorsers can renew it) while every
 * agent refuses it: so it shows the dates before they fall (a gauge, /healthz) and says so in
 * its log when one falls, or at start-up when one already has.
 */

const YAML = { 'content-type': 'application/yaml' }
const DAY = 86400_000
type Line = Record<string, unknown> & { level: number, msg: string }
const seconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A server over `dataDir` whose warnings (pino level 40 and up) land in the returned array. */
async function serve (t: Test, dataDir: string, now?: () => Date) {
  const lines: Line[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  const app = await buildServer({ dataDir, logger: { level: 'warn', stream }, ...(now !== undefined ? { now } : {}) })
  t.teardown(async () => await app.close())
  const warnings = (): Line[] => lines.filter((l) => l.level >= 40)
  return { app, warnings }
}

/**
 * Signs and publishes to `app` the next index, expiring 8 s from now: far enough ahead for a busy
 * machine to publish it first (signed dates have whole seconds). Its `expires`.
 */
async function publishExpiringSoon (t: Test, app: Awaited<ReturnType<typeof buildServer>>, fx: Awaited<ReturnType<typeof makeServerDir>>['fx']): Promise<string> {
  const expires = rfc3339(new Date(Date.now() + 8000))
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires })))
  t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })).statusCode, 200)
  return expires
}

function gauge (metrics: string, document: 'root' | 'index'): number | undefined {
  const m = new RegExp(`\\nimgdist_index_catalogue_expires_seconds\\{document="${document}"\\} (\\d+)\\n`).exec(metrics)
  return m === null ? undefined : Number(m[1])
}

t.test('the gauge and /healthz give when the served root and index expire (0 / null: none served)', async (t) => {
  const overflow: string[] = []
  const onWarning = (w: Error): void => { if (w.name === 'TimeoutOverflowWarning') overflow.push(w.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const { dataDir, fx } = await makeServerDir(t)
  const { app, warnings } = await serve(t, dataDir)
  let metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /# HELP imgdist_index_catalogue_expires_seconds Unix time at which the served root and index expire \(0: none served\)/)
  t.equal(gauge(metrics, 'root'), seconds(fx.root.signed.expires), 'the root\'s expires')
  t.equal(gauge(metrics, 'index'), 0, 'no index yet')
  let h = await app.inject({ url: '/healthz' })
  t.equal(h.statusCode, 200)
  t.match(h.json(), { status: 'ok', rootExpires: fx.root.signed.expires, indexExpires: null, expired: [] })

  await fx.addImage('img-a', 1000)
  t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })).statusCode, 200)
  metrics = (await app.inject({ url: '/metrics' })).body
  t.equal(gauge(metrics, 'index'), seconds(fx.index.signed.expires), 'the published index\'s expires')
  t.match(metrics, /imgdist_index_catalogue_version\{document="index"\} 1/, 'beside its version')
  h = await app.inject({ url: '/healthz' })
  t.match(h.json(), { indexVersion: 1, indexExpires: fx.index.signed.expires, expired: [] })
  // the next expiry (the index's, 30 days off) is beyond one setTimeout: the timer is capped, not fired at once
  await sleep(200)
  t.same(overflow, [], 'no TimeoutOverflowWarning (a 1 ms timer re-armed in a loop)')
  t.same(warnings(), [], 'nothing to warn of')
})

t.test('an index that expires while served: one warning at that moment; /healthz stays 200 and names it', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  const { app, warnings } = await serve(t, dataDir)
  const expires = await publishExpiringSoon(t, app, fx)
  if (Date.now() < Date.parse(expires) - 500) t.same(warnings(), [], 'not yet expired')
  // The deadline is wall time but the server's timer is not: a process paused or starved past the
  // deadline (seen in CI) wakes with both due, and the test's own sleep may run first. So the wait
  // ends only after a few more turns of the timers once the deadline has passed.
  const deadline = Date.parse(expires) + 10_000
  for (let late = 0; warnings().length === 0 && late < 3; late += Date.now() >= deadline ? 1 : 0) await sleep(100)
  t.ok(Date.now() >= Date.parse(expires), 'not before the date')
  const [w, ...more] = warnings()
  t.same(more, [], 'one line')
  t.match(w, {
    document: 'index',
    version: 1,
    expires: fx.index.signed.expires,
    catalogue: 'test-catalogue',
    msg: `the served index v1 of catalogue "test-catalogue" expired at ${fx.index.signed.expires}; agents refuse it (EXPIRED) and start nothing new from it: the endorsers must sign and publish a renewed index (README, "Renew before expires")`
  })
  const h = await app.inject({ url: '/healthz' })
  t.equal(h.statusCode, 200, 'the server itself is healthy')
  t.match(h.json(), { status: 'ok', indexVersion: 1, expired: ['index'] })

  // a root rotation re-checks the dates: the index is not warned of twice
  const rotated = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: rootV2(fx).rotated })
  t.equal(rotated.statusCode, 200, rotated.body)
  t.equal(warnings().length, 1, 'still one warning')
})

t.test('at start-up an already expired index, and root, are named in the log at once', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 1000)
  const first = await serve(t, dataDir)
  t.equal((await first.app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })).statusCode, 200)
  await first.app.close()

  // 40 days on: the index (30 days) has expired, the root (365 days) has not
  const later = await serve(t, dataDir, () => new Date(Date.now() + 40 * DAY))
  t.match(later.warnings(), [{ document: 'index', version: 1, msg: /^the served index v1 of catalogue "test-catalogue" expired at / }])
  t.match((await later.app.inject({ url: '/healthz' })).json(), { expired: ['index'] })
  await later.app.close()

  const muchLater = await serve(t, dataDir, () => new Date(Date.now() + 400 * DAY))
  t.match(muchLater.warnings().map((l) => l.document).sort(), ['index', 'root'])
  t.match(muchLater.warnings().find((l) => l.document === 'root'), {
    version: 1,
    msg: `the served trusted root v1 of catalogue "test-catalogue" expired at ${fx.root.signed.expires}; agents refuse every index under it (EXPIRED): the root key holders must sign and publish the next root version (README, "rotate root keys")`
  })
  t.match((await muchLater.app.inject({ url: '/healthz' })).json(), { expired: ['root', 'index'] })
  t.equal(gauge((await muchLater.app.inject({ url: '/metrics' })).body, 'index'), seconds(fx.index.signed.expires), 'the gauge keeps the past date')
})

t.test('close() clears the expiry timer: a closed server warns of nothing', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  const { app, warnings } = await serve(t, dataDir)
  const expires = await publishExpiringSoon(t, app, fx)
  await app.close()
  t.ok(Date.now() < Date.parse(expires), 'closed before the index expired')
  await sleep(Date.parse(expires) + 1500 - Date.now())
  t.same(warnings(), [])
})
