import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { serializeDocument } from '../lib/document.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { addSignature } from '../lib/document.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { body, indexBytes, makeServerDir, putIndex, waitFor } from './index-fixture.js'

const run = promisify(execFile)

async function hasTool (name: string): Promise<boolean> {
  try { await run('sh', ['-c', `command -v ${name}`]); return true } catch { return false }
}

async function startServer (tt: Test, dataDir: string, extra: Record<string, unknown> = {}) {
  const config = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort: 0, dht: false })
  const daemon = await startIndexDaemon({ ...config, ...extra, seeding: { ...config.seeding, ...(extra.seeding as object | undefined), utp: false } } as typeof config, { logger: false })
  tt.teardown(async () => await daemon.close())
  return daemon
}

async function sha512File (path: string): Promise<string> {
  return createHash('sha512').update(await readFile(path)).digest('hex')
}

t.test('aria2c downloads an image from the origin seed via the served .torrent and tracker', async (t) => {
  if (!(await hasTool('aria2c'))) { t.skip('MISSING TOOL aria2c: install the Debian package aria2 (test/setup/install-tools.sh)', () => {}); return }
  const { dataDir, fx, dir } = await makeServerDir(t)
  const entry = await fx.addImage('img-bt', 3 * 1024 * 1024 + 123, { pieceLength: 256 * 1024 })
  // No web seed in the served torrent: the bytes must come over BitTorrent from the origin seeder.
  // An egress budget of one copy never holds back a downloader that has no other source.
  const base = resolveServeConfig(undefined, undefined, { dataDir })
  const daemon = await startServer(t, dataDir, { torrents: { ...base.torrents, injectWebSeed: false }, seeding: { egressBudget: 1 } })
  t.equal(daemon.seeder?.opts.egressBudget, 1, 'the budget reaches the origin seeder')
  const url = daemon.url
  const put = async (path: string, type: string, data: Uint8Array): Promise<Response> => await fetch(url + path, { method: 'PUT', headers: { 'content-type': type }, body: body(data) })
  t.equal((await put('/v1/index.yaml', 'application/yaml', await indexBytes(fx))).status, 200)
  t.equal((await put(`/v1/torrents/${entry.infoHash}.torrent`, 'application/x-bittorrent', fx.torrents.get('img-bt') as Uint8Array)).status, 200)
  t.equal((await put('/v1/images/img-bt', 'application/octet-stream', await readFile(fx.images.get('img-bt') as string))).status, 200)
  await waitFor('the origin to seed img-bt', async () => {
    const h = await (await fetch(url + '/healthz')).json() as { seeding: number }
    return h.seeding >= 1 ? true : undefined
  })

  const torrentBytes = new Uint8Array(await (await fetch(`${url}/v1/torrents/${entry.infoHash}.torrent`)).arrayBuffer())
  const parsed = parseTorrent(torrentBytes, { infoHash: entry.infoHash, length: entry.size })
  t.same(parsed.announce, [`${url}/announce`], 'tracker URL in the served torrent')
  t.same(parsed.webSeeds, [])
  const torrentFile = join(dir, 'img-bt.torrent')
  await writeFile(torrentFile, torrentBytes)
  const out = join(dir, 'aria2-bt')
  const res = await run('aria2c', ['--seed-time=0', '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    '--bt-stop-timeout=60', '--summary-interval=0', '--console-log-level=warn', '--file-allocation=none', '--dir', out, torrentFile], { timeout: 120_000 })
  t.ok(res, 'aria2c exited 0')
  t.equal(await sha512File(join(out, 'img-bt')), entry.sha512, 'sha512 of the downloaded file matches the index')
  const metrics = await (await fetch(url + '/metrics')).text()
  const uploaded = Number(/imgdist_index_seed_uploaded_bytes (\d+)/.exec(metrics)?.[1])
  t.ok(uploaded >= entry.size, `the origin seeder uploaded the bytes (${uploaded})`)
  t.match(metrics, /imgdist_index_webseed_bytes_total 0/, 'nothing came from the web seed')
  t.match(metrics, /imgdist_index_torrents_seeded 1/)
  t.match(metrics, /imgdist_index_seed_rejected_blocks 0/, 'with seeding.egressBudget 1, nothing rejected of a downloader that has no other source')
})

t.test('web seed over real HTTP: curl Range and aria2c split download', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const entry = await fx.addImage('img-http', 2 * 1024 * 1024 + 7)
  const daemon = await startServer(t, dataDir, { seeding: { ...resolveServeConfig(undefined, undefined, { dataDir }).seeding, enabled: false } })
  const url = daemon.url
  await putIndex(url, await indexBytes(fx))
  // Streamed upload from a file (chunked transfer, no Content-Length).
  const { createReadStream } = await import('node:fs')
  const { Readable } = await import('node:stream')
  const up = await fetch(url + '/v1/images/img-http', { method: 'PUT', body: Readable.toWeb(createReadStream(fx.images.get('img-http') as string)) as ReadableStream, duplex: 'half' } as RequestInit)
  t.equal(up.status, 200, await up.clone().text())
  const bytes = await readFile(fx.images.get('img-http') as string)

  if (await hasTool('curl')) {
    const part = join(dir, 'part')
    const { stdout } = await run('curl', ['-sS', '-r', '1000-1999', '-o', part, '-w', '%{http_code} %{size_download}', `${url}/v1/images/img-http`])
    t.equal(stdout, '206 1000')
    t.same(await readFile(part), bytes.subarray(1000, 2000))
    const head = await run('curl', ['-sS', '-I', `${url}/v1/images/img-http`])
    t.match(head.stdout, /accept-ranges: bytes/i)
    t.match(head.stdout, new RegExp(`content-length: ${entry.size}`, 'i'))
    const bad = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '-r', `${entry.size}-`, `${url}/v1/images/img-http`])
    t.match(bad.stdout, /^HTTP\/1.1 416/)
    t.match(bad.stdout, new RegExp(`content-range: bytes \\*/${entry.size}`, 'i'))
  } else {
    t.skip('MISSING TOOL curl: install the Debian package curl', () => {})
  }
  if (await hasTool('aria2c')) {
    const out = join(dir, 'aria2-http')
    await run('aria2c', ['-x4', '-s4', '-k1M', '--summary-interval=0', '--console-log-level=warn', '--file-allocation=none', '--dir', out, `${url}/v1/images/img-http`], { timeout: 60_000 })
    t.equal(await sha512File(join(out, 'img-http')), entry.sha512, 'aria2c (4 ranged connections) got the signed bytes')
  } else {
    t.skip('MISSING TOOL aria2c: install the Debian package aria2', () => {})
  }
})

t.test('publish race: concurrent PUTs of v5 and v6 end with v6 served and a valid file', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-r', 1000)
  const daemon = await startServer(t, dataDir, { seeding: { ...resolveServeConfig(undefined, undefined, { dataDir }).seeding, enabled: false } })
  const url = daemon.url
  const put = async (text: string): Promise<{ status: number, code?: string }> => {
    const r = await fetch(url + '/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: text })
    const j = await r.json() as { code?: string }
    return { status: r.status, code: j.code }
  }
  // Bring the server to v4.
  for (let v = fx.index.signed.version; v < 4; v++) await fx.publish((idx) => editIndex(idx, new Date(), (s) => s))
  t.equal((await put(serializeDocument(fx.index))).status, 200)
  for (let round = 0; round < 8; round++) {
    const lower = addSignature(editIndex(fx.index, new Date(), (s) => s), fx.indexKeys[0]!)
    const higher = addSignature(editIndex(lower, new Date(), (s) => ({ ...s, revoked: [] })), fx.indexKeys[0]!)
    fx.index = higher
    const [a, b] = round % 2 === 0
      ? await Promise.all([put(serializeDocument(lower)), put(serializeDocument(higher))])
      : (await Promise.all([put(serializeDocument(higher)), put(serializeDocument(lower))])).reverse() as [Awaited<ReturnType<typeof put>>, Awaited<ReturnType<typeof put>>]
    t.equal(b.status, 200, `round ${round}: v${higher.signed.version} accepted`)
    t.ok(a.status === 200 || (a.status === 409 && a.code === 'ROLLBACK'), `round ${round}: v${lower.signed.version} accepted first or refused as ROLLBACK (${a.status} ${a.code ?? ''})`)
    const served = await (await fetch(url + '/v1/index.yaml')).text()
    t.equal(served, serializeDocument(higher), `round ${round}: v${higher.signed.version} served`)
    t.equal(await readFile(join(dataDir, 'index.yaml'), 'utf8'), serializeDocument(higher), `round ${round}: file on disk is v${higher.signed.version}`)
  }
})

t.test('a second server on the same data dir refuses to start', async (t) => {
  const { dataDir } = await makeServerDir(t)
  await startServer(t, dataDir, { seeding: { ...resolveServeConfig(undefined, undefined, { dataDir }).seeding, enabled: false } })
  await t.rejects(startServer(t, dataDir), { code: 'STATE_LOCKED' })
})

t.test('seeding.egressBudget is 0 (no limit) or at least one copy, and a bad value is refused by name', async (t) => {
  t.equal(resolveServeConfig(undefined, undefined, { dataDir: '/d' }).seeding.egressBudget, 0, 'no limit by default')
  t.equal(resolveServeConfig('seeding: { egressBudget: 1.5 }\n', 'index.yaml', { dataDir: '/d' }).seeding.egressBudget, 1.5)
  for (const bad of ['0.5', '-1', 'lots']) {
    const err = t.throws(() => resolveServeConfig(`seeding: { egressBudget: ${bad} }\n`, 'index.yaml', { dataDir: '/d' })) as { code?: string, problems?: string[] }
    t.equal(err.code, 'CONFIG_INVALID')
    t.match(err.problems, [/^seeding\.egressBudget: .*0 \(no limit\) or a number from 1 to 1000/], bad)
  }
})

t.test('timer durations beyond what Node\'s timers hold are refused by name (a 30d rescan would run every millisecond)', async (t) => {
  const err = t.throws(() => resolveServeConfig('seeding: { rescanInterval: 30d }\nlimits: { idleTimeout: 4w }\n', 'index.yaml', { dataDir: '/d' })) as { code?: string, problems?: string[] }
  t.equal(err.code, 'CONFIG_INVALID')
  t.match(err.problems, [/^seeding\.rescanInterval: .*at most 24d/, /^limits\.idleTimeout: .*at most 24d/])
  t.equal(resolveServeConfig('seeding: { rescanInterval: 24d }\n', 'index.yaml', { dataDir: '/d' }).seeding.rescanInterval, '24d')
})

t.test('durations parseDuration refuses (0, too many digits) are refused by the schema, by name, not when the server starts', async (t) => {
  const err = t.throws(() => resolveServeConfig('cache: { indexMaxAge: 0m }\nfleet: { staleAfter: 0s, refresh: 99999999999999999999s }\nseeding: { rescanInterval: 0s }\n', 'index.yaml', { dataDir: '/d' })) as { code?: string, problems?: string[] }
  t.equal(err.code, 'CONFIG_INVALID')
  t.match(err.problems?.slice().sort(), [
    /^cache\.indexMaxAge: .*Cache-Control max-age of index\.yaml and root\.yaml: a duration like 30s \(s, m, h, d, w\), above 0$/,
    /^fleet\.refresh: .*refresh period of the fleet page: .*above 0/,
    /^fleet\.staleAfter: .*shown as stale: .*above 0/,
    /^seeding\.rescanInterval: .*above 0 and at most 24d/
  ])
  t.equal(err.problems?.length, 4)
  const ok = resolveServeConfig('fleet: { staleAfter: 52w }\n', 'index.yaml', { dataDir: '/d' })
  t.equal(ok.fleet.staleAfter, '52w', 'a duration that drives no timer is not bounded to 24d')
  t.equal(ok.cache.indexMaxAge, '30s', 'defaults still filled in')
})

t.test('with seeding off the rescan timer still verifies files placed by hand for the web seed', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-timer', 30_000)
  const daemon = await startServer(t, dataDir, { seeding: { enabled: false, rescanInterval: '1s' } })
  t.equal(daemon.seeder, undefined)
  t.equal((await putIndex(daemon.url, await indexBytes(fx))).status, 200)
  const { copyFile } = await import('node:fs/promises')
  await copyFile(fx.images.get('img-timer') as string, join(dataDir, 'images', 'img-timer'))
  await waitFor('the next rescan to verify img-timer', async () => (await fetch(daemon.url + '/v1/images/img-timer', { method: 'HEAD' })).status === 200 ? true : undefined)
  t.pass('served without a SIGHUP or a restart')
})

t.test('files placed by hand are verified and seeded; revoked images stop being seeded and served', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  const a = await fx.addImage('img-hand', 200_000, { pieceLength: 16384 })
  const b = await fx.addImage('img-bad', 100_000, { pieceLength: 16384 })
  const daemon = await startServer(t, dataDir)
  const url = daemon.url
  t.equal((await fetch(url + '/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: body(await indexBytes(fx)) })).status, 200)
  // An operator copies files straight into the data dir: one good, one corrupted.
  const { copyFile } = await import('node:fs/promises')
  await copyFile(fx.images.get('img-hand') as string, join(dataDir, 'images', 'img-hand'))
  await writeFile(join(dataDir, 'torrents', `${a.infoHash}.torrent`), fx.torrents.get('img-hand') as Uint8Array)
  await writeFile(join(dataDir, 'images', 'img-bad'), Buffer.alloc(b.size))
  await writeFile(join(dataDir, 'torrents', `${b.infoHash}.torrent`), fx.torrents.get('img-bad') as Uint8Array)
  daemon.app.imgdist.resync() // what SIGHUP and the rescan timer do
  await waitFor('img-hand to be seeded', () => daemon.seeder?.seeding().includes(a.infoHash) === true ? true : undefined)
  t.same(daemon.seeder?.seeding(), [a.infoHash], 'the corrupted file is not seeded')
  t.equal((await fetch(url + '/v1/images/img-hand', { method: 'HEAD' })).status, 200)
  t.equal((await fetch(url + '/v1/images/img-bad', { method: 'HEAD' })).status, 404)

  await fx.revoke('img-hand', 'CVE-2026-0001')
  t.equal((await fetch(url + '/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: body(await indexBytes(fx)) })).status, 200)
  await waitFor('img-hand to stop being seeded', () => daemon.seeder?.seeding().length === 0 ? true : undefined)
  t.equal((await fetch(url + '/v1/images/img-hand')).status, 404, 'revoked: not served by the web seed')
  t.equal((await fetch(`${url}/v1/torrents/${a.infoHash}.torrent`)).status, 404, 'revoked: torrent not served')
  const { stat } = await import('node:fs/promises')
  t.ok((await stat(join(dataDir, 'images', 'img-hand'))).isFile(), 'the file itself is left for the operator')
})
