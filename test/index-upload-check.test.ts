import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { resolveServeConfig } from '../index-server/server-config.js'
import { buildServer } from '../index-server/server.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { generateKeyPair } from '../lib/keys.js'
import { indexBytes, indexCli, makeServerDir, putIndex, serveIndex, writeLargeIndex, type RunningIndex } from './index-fixture.js'

/*
 * An uploaded index or root is parsed and verified in a worker thread: a body that costs seconds
 * of CPU costs them there, while the event loop answers everyone else, and one over the
 * worker's heap or deadline is refused as PARSE_LIMIT with the catalogue in force kept.
 * Ordering is asserted, never a duration.
 */

t.test('while a large index is checked, the real server answers other requests', async (t) => {
  const { dir, dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 1000)
  const v1 = await indexBytes(fx)
  const big = await writeLargeIndex(fx, 10_000)
  // All the parsing and none of the writing: refused once parsed, so the refusal leaves at the
  // moment the check ends, and whatever was answered before it was answered during the check.
  const stranger = addSignature({ signed: fx.index.signed, signatures: [] }, generateKeyPair())
  const config = join(dir, 'serve.yaml')
  await writeFile(config, 'logLevel: debug\n')
  const s = await serveIndex(t, dataDir, ['--no-dht', '--config', config])
  t.equal((await putIndex(s.url, v1)).status, 200)

  const order: string[] = []
  const checking = s.nextLog((l) => l.msg === 'checking the uploaded index')
  const put = putIndex(s.url, Buffer.from(serializeDocument(stranger))).then(async (r) => { order.push('PUT'); return { status: r.status, body: await r.text() } })
  await checking
  const get = async (path: string): Promise<Response> => {
    const r = await fetch(s.url + path)
    order.push(path)
    return r
  }
  const [health, during, metrics] = await Promise.all([get('/healthz'), get('/v1/index.yaml'), get('/metrics')])
  const refused = await put
  t.same(order.slice(0, 3).sort(), ['/healthz', '/metrics', '/v1/index.yaml'], `answered while the PUT was being checked: ${order.join(', ')}`)
  t.equal(order[3], 'PUT')
  t.equal(health.status, 200)
  t.match(await health.json(), { indexVersion: 1 }, 'v1 is in force meanwhile')
  t.equal(await during.text(), v1.toString(), 'and served')
  t.equal(metrics.status, 200)
  t.equal(refused.status, 403, refused.body)
  t.match(JSON.parse(refused.body), { code: 'THRESHOLD_NOT_MET' })

  const accepted = await putIndex(s.url, big)
  t.equal(accepted.status, 200, await accepted.clone().text())
  t.equal(await (await fetch(s.url + '/v1/index.yaml')).text(), big.toString(), 'the large index, checked in the worker, is served')
})

t.test('a body over the worker\'s heap or deadline is refused as PARSE_LIMIT; the last good index stays', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 1000)
  const v1 = await indexBytes(fx)
  const big = await writeLargeIndex(fx, 10_000)
  const first = await buildServer({ dataDir })
  t.equal((await first.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: v1 })).statusCode, 200)
  await first.close()

  for (const [limit, message] of [[{ deadlineMs: 50 }, /took longer than 0.05 s/], [{ heapMiB: 64 }, /needed more than 64 MiB of memory/]] as const) {
    const app = await buildServer({ dataDir, uploadLimits: limit })
    t.teardown(async () => await app.close())
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const r = await putIndex(url, big)
    t.equal(r.status, 413, JSON.stringify(limit))
    const refusal = await r.json() as { code: string, message: string }
    t.equal(refusal.code, 'PARSE_LIMIT')
    t.match(refusal.message, message)
    t.equal(await (await fetch(url + '/v1/index.yaml')).text(), v1.toString(), 'the last good index is still served')
    t.match(await (await fetch(url + '/metrics')).text(), /imgdist_index_publishes_total\{document="index",result="refused",code="PARSE_LIMIT"\} 1/)
    if ('heapMiB' in limit) {
      // The worker stopped at its limit is replaced: the next publish is checked as usual.
      await fx.publish((idx) => editIndex(idx, new Date(), (s) => ({ ...s, images: s.images.slice(0, 1) })))
      const small = await indexBytes(fx)
      const next = await putIndex(url, small)
      t.equal(next.status, 200, await next.clone().text())
      t.equal(await (await fetch(url + '/v1/index.yaml')).text(), small.toString())
    }
    await app.close()
  }
})

t.test('serve --config: limits.uploadCheckMemory and uploadCheckTime are checked, naming the field', async (t) => {
  const { dir, dataDir } = await makeServerDir(t)
  for (const [memory, time] of [['1', 'soon'], ['16385', '0s'], ['768.5', '601s'], ['"768"', '11m'], ['63', '4w']]) {
    const cfg = join(dir, 'bad.yaml')
    await writeFile(cfg, `dataDir: ${dataDir}\nlisten: 127.0.0.1:0\nlimits:\n  uploadCheckMemory: ${memory}\n  uploadCheckTime: ${time}\n`)
    const r = await indexCli(['serve', '--no-seed', '--config', cfg])
    t.equal(r.code, 2, `${memory}, ${time}: ${r.stderr}`)
    t.match(r.stderr, /CONFIG_INVALID: /)
    // each named with what it bounds, which an unknown field would not be
    t.match(r.stderr, /limits\.uploadCheckMemory: [^;]*MiB of heap/)
    t.match(r.stderr, /limits\.uploadCheckTime: [^;]*PARSE_LIMIT: a duration like 30s [^;]*at most 10m/)
  }
  // the bounds themselves are accepted, and the defaults are those of upload-checker.ts
  for (const [memory, time] of [[64, '1s'], [16384, '600s'], [768, '1m'], [768, '10m']] as const) {
    const c = resolveServeConfig(`limits:\n  uploadCheckMemory: ${memory}\n  uploadCheckTime: ${time}\n`, 'c.yaml', { dataDir })
    t.same([c.limits.uploadCheckMemory, c.limits.uploadCheckTime], [memory, time])
  }
  t.same(resolveServeConfig(undefined, undefined, { dataDir }).limits, { publishPerMinute: 30, reportsPerMinute: 600, idleTimeout: '2m', watchers: 10000, uploadCheckMemory: 768, uploadCheckTime: '30s' })
})

/*
 * Measured with the built server on a 2-core machine (Node 20), the index of 10 000 images
 * (the schema's maximum) is refused with a heap of 192 MiB and accepted with 256, and takes 4-6 s
 * to check: the minimum heap (64 MiB) and a 1 s deadline are each over 3x short of it, so each
 * refusal is sure, while the default limits (768 MiB, 30 s) leave it room as wide. The same
 * large index is the success case: about 5 s, within this test's budget.
 */
t.test('the real server takes its upload-check limits from the config file', async (t) => {
  const { dir, dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-a', 1000)
  const v1 = await indexBytes(fx)
  const big = await writeLargeIndex(fx, 10_000)
  const serve = async (limits: string): Promise<RunningIndex> => {
    const config = join(dir, 'serve.yaml')
    await writeFile(config, limits === '' ? 'logLevel: info\n' : `limits:\n${limits}`)
    return await serveIndex(t, dataDir, ['--no-dht', '--config', config])
  }
  const stop = async (s: RunningIndex): Promise<void> => {
    s.proc.kill('SIGTERM')
    t.equal(await s.exited, 0)
  }

  const cases = [
    // the smallest heap still checks a small index: v1, in force from here on
    { limits: '  uploadCheckMemory: 64\n', publishV1: true, refused: /needed more than 64 MiB of memory/ },
    { limits: '  uploadCheckTime: 1s\n', publishV1: false, refused: /took longer than 1 s/ }
  ]
  for (const c of cases) {
    const s = await serve(c.limits)
    if (c.publishV1) {
      const first = await putIndex(s.url, v1)
      t.equal(first.status, 200, `v1 within ${c.limits.trim()}: ${await first.text()}`)
    }
    const r = await putIndex(s.url, big)
    const refusal = await r.json() as { code: string, message: string }
    t.equal(r.status, 413, `${c.limits.trim()}: ${JSON.stringify(refusal)}`)
    t.equal(refusal.code, 'PARSE_LIMIT')
    t.match(refusal.message, c.refused)
    t.equal(await (await fetch(s.url + '/v1/index.yaml')).text(), v1.toString(), 'the old index is still served')
    await stop(s)
  }

  const s = await serve('')
  const accepted = await putIndex(s.url, big)
  t.equal(accepted.status, 200, `with the default limits: ${await accepted.text()}`)
  t.equal(await (await fetch(s.url + '/v1/index.yaml')).text(), big.toString())
  await stop(s)
})
