import { request } from 'node:http'
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { encodePublicKey, encodeSecretKey, generateKeyPair } from '../lib/keys.js'
import { body, fakeSite, indexBytes, indexCli as cli, makeServerDir, putIndex, serveIndex as serve, siteReport, waitFor, type FakeSite } from './index-fixture.js'
import { makeFixture } from './helpers/catalogue-fixture.js'

t.test('usage errors exit 2 with one line; help is printed', async (t) => {
  const none = await cli([])
  t.equal(none.code, 2)
  const bogus = await cli(['frobnicate'])
  t.equal(bogus.code, 2)
  t.match(bogus.stderr, /^imgdist-index: USAGE: unknown command "frobnicate"\n/)
  t.notMatch(bogus.stderr, /\bat .*\.js:\d+/, 'no stack trace')
  const badFlag = await cli(['serve', '--data-dir', '/x', '--bogus'])
  t.equal(badFlag.code, 2)
  const badConfig = await cli(['serve', '--data-dir', '/x', '--listen', 'nope', '--torrent-port', '99999'])
  t.equal(badConfig.code, 2)
  t.match(badConfig.stderr, /--torrent-port/)
  const help = await cli(['serve', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /--public-url URL/)
  t.match((await cli(['help'])).stdout, /EXIT STATUS/)
})

t.test('serve validates the config file, naming every bad field', async (t) => {
  const { dir } = await makeServerDir(t)
  const cfg = join(dir, 'bad.yaml')
  await writeFile(cfg, 'dataDir: /tmp/x\nlisten: 1.2.3.4\nseeding:\n  torrentPort: -1\n  bogus: 1\ncache:\n  indexMaxAge: soon\n')
  const r = await cli(['serve', '--config', cfg])
  t.equal(r.code, 2)
  for (const field of ['listen', 'seeding.torrentPort', 'seeding.bogus', 'cache.indexMaxAge']) t.match(r.stderr, field)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  const noRoot = await cli(['serve', '--data-dir', join(dir, 'empty'), '--listen', '127.0.0.1:0', '--no-seed'])
  t.equal(noRoot.code, 1)
  t.match(noRoot.stderr, /NO_ROOT: .*imgdist-index init/)
})

t.test('serve refuses a duration of 0 or of too many digits at start-up, naming the field with the others', async (t) => {
  const { dir } = await makeServerDir(t)
  const cfg = join(dir, 'zero.yaml')
  await writeFile(cfg, `dataDir: ${join(dir, 'never')}\nlisten: 127.0.0.1:0\nseeding: { enabled: false, dht: false }\nfleet:\n  staleAfter: 0s\n  refresh: 99999999999999999999s\nlogLevel: loud\n`)
  const r = await cli(['serve', '--config', cfg])
  t.equal(r.code, 2)
  t.match(r.stderr, /^imgdist-index: CONFIG_INVALID: .*zero\.yaml is invalid: /)
  for (const field of ['logLevel', 'fleet.staleAfter', 'fleet.refresh']) t.match(r.stderr, `${field}: `, `names ${field}`)
  t.match(r.stderr, /fleet\.staleAfter: [^;]*a site without a report for this long is shown as stale: a duration like 10m \(s, m, h, d, w\), above 0/)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  await t.rejects(readdir(join(dir, 'never')), { code: 'ENOENT' }, 'nothing was created')
})

t.test('init installs a verified root only', async (t) => {
  const { dir } = await makeServerDir(t)
  const fx = await makeFixture(join(dir, 'fx2'))
  const data = join(dir, 'd2')
  const ok = await cli(['init', '--data-dir', data, '--root', fx.rootPath])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /installed root v1 of catalogue "test-catalogue"/)
  t.same(await readdir(join(data, 'root')), ['1.yaml'])
  const again = await cli(['init', '--data-dir', data, '--root', fx.rootPath])
  t.equal(again.code, 1)
  t.match(again.stderr, /ALREADY_INITIALISED/)
  const tampered = join(dir, 'tampered.yaml')
  await writeFile(tampered, (await readFile(fx.rootPath, 'utf8')).replace('test-catalogue', 'evil-catalogue'))
  const bad = await cli(['init', '--data-dir', join(dir, 'd3'), '--root', tampered])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /SIGNATURE_INVALID/)
  t.equal((await cli(['init', '--data-dir', join(dir, 'd4')])).code, 2, '--root missing')
})

t.test('sites add/list/remove and import', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const key = encodePublicKey(generateKeyPair().publicKey)
  const pubFile = join(dir, 'b.pub')
  await writeFile(pubFile, encodePublicKey(generateKeyPair().publicKey) + '\n')
  t.equal((await cli(['sites', 'add', 'site-a', key, '--data-dir', dataDir])).code, 0)
  t.equal((await cli(['sites', 'add', 'site-b', pubFile, '--data-dir', dataDir])).code, 0)
  const dup = await cli(['sites', 'add', 'site-a', key, '--data-dir', dataDir])
  t.equal(dup.code, 1)
  t.match(dup.stderr, /SITE_EXISTS/)
  t.equal((await cli(['sites', 'add', '../x', key, '--data-dir', dataDir])).code, 2)
  t.match((await cli(['sites', 'add', 'site-c', 'ed25519:short', '--data-dir', dataDir])).stderr, /KEY_INVALID/)
  const list = await cli(['sites', 'list', '--data-dir', dataDir])
  t.match(list.stdout, /^site-a\ted25519:.*\nsite-b\t/)
  t.equal((await cli(['sites', 'remove', 'site-b', '--data-dir', dataDir])).code, 0)
  t.notMatch((await cli(['sites', 'list', '--data-dir', dataDir])).stdout, /site-b/)

  const entry = await fx.addImage('img-imp', 70_000)
  const noIndex = await cli(['import', '--data-dir', dataDir, '--id', 'img-imp', fx.images.get('img-imp') as string])
  t.equal(noIndex.code, 1)
  t.match(noIndex.stderr, /NOT_FOUND/)
  await writeFile(join(dataDir, 'index.yaml'), await indexBytes(fx))
  const wrong = join(dir, 'wrong.img')
  await writeFile(wrong, Buffer.alloc(70_000))
  const mismatch = await cli(['import', '--data-dir', dataDir, '--id', 'img-imp', wrong])
  t.equal(mismatch.code, 1)
  t.match(mismatch.stderr, /HASH_MISMATCH/)
  t.same(await readdir(join(dataDir, 'images')), [], 'nothing copied')
  const torrentFile = join(dir, 'imp.torrent')
  await writeFile(torrentFile, fx.torrents.get('img-imp') as Uint8Array)
  const ok = await cli(['import', '--data-dir', dataDir, '--id', 'img-imp', '--torrent', torrentFile, fx.images.get('img-imp') as string])
  t.equal(ok.code, 0, ok.stderr)
  t.same(await readdir(join(dataDir, 'images')), ['img-imp'])
  t.same(await readdir(join(dataDir, 'torrents')), [`${entry.infoHash}.torrent`])
})

t.test('input the user gave that cannot be used exits 2 (bad usage), one line naming it; nothing is created', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const oneLine = (what: string, r: { code: number, stderr: string }, code: number, line: RegExp): void => {
    t.equal(r.code, code, `${what}: exit ${code}`)
    t.match(r.stderr, line, what)
    t.equal(r.stderr.split('\n').length, 2, `${what}: one line`)
  }
  const missing = join(dir, 'no-such.yaml')
  const fresh = join(dir, 'fresh')
  oneLine('init --root FILE that is not there', await cli(['init', '--data-dir', fresh, '--root', missing]), 2,
    /^imgdist-index: IO_ERROR: cannot read root .*no-such\.yaml: ENOENT\n$/)
  await t.rejects(readdir(fresh), { code: 'ENOENT' }, 'init created no data directory')
  oneLine('init --root DIRECTORY', await cli(['init', '--data-dir', fresh, '--root', dir]), 2, /^imgdist-index: IO_ERROR: cannot read root .*: EISDIR\n$/)

  const key = encodePublicKey(generateKeyPair().publicKey)
  oneLine('sites add with a key too short', await cli(['sites', 'add', 'site-c', 'ed25519:short', '--data-dir', dataDir]), 2,
    /^imgdist-index: KEY_INVALID: site "site-c": /)
  await writeFile(join(dir, 'c.key'), encodeSecretKey(generateKeyPair().secretKey) + '\n')
  oneLine('sites add with the secret key file', await cli(['sites', 'add', 'site-c', join(dir, 'c.key'), '--data-dir', dataDir]), 2,
    /^imgdist-index: KEY_INVALID: site "site-c": this is a secret key, expected a public key/)
  oneLine('sites add with a key file that is not there', await cli(['sites', 'add', 'site-c', join(dir, 'c.pub'), '--data-dir', dataDir]), 2,
    /^imgdist-index: IO_ERROR: cannot read public key file .*c\.pub: ENOENT \(PUBKEY is "ed25519:<base64>" or a file holding it\)\n$/)
  await writeFile(join(dir, 'big.pub'), 'x'.repeat(5000))
  oneLine('sites add with a key file far too large', await cli(['sites', 'add', 'site-c', join(dir, 'big.pub'), '--data-dir', dataDir]), 2,
    /^imgdist-index: KEY_INVALID: .*big\.pub is 5000 bytes, too large for a public key file/)
  oneLine('sites remove of a site not registered', await cli(['sites', 'remove', 'site-z', '--data-dir', dataDir]), 2,
    /^imgdist-index: NOT_FOUND: no site "site-z" in .*sites\.yaml; "imgdist-index sites list --data-dir .*" shows the registered ones\n$/)
  for (const sub of [['list'], ['add', 'site-c', key]]) {
    oneLine(`sites ${sub[0] as string} with a --data-dir that is not there`, await cli(['sites', ...sub, '--data-dir', fresh]), 2,
      /^imgdist-index: NOT_FOUND: --data-dir .*fresh: no such directory/)
  }
  t.equal((await cli(['sites', 'list', '--data-dir', dataDir])).stdout, '', 'no site was added')

  await fx.addImage('img-in', 70_000)
  await writeFile(join(dataDir, 'index.yaml'), await indexBytes(fx))
  const image = fx.images.get('img-in') as string
  oneLine('import of an IMAGE-FILE that is not there', await cli(['import', '--data-dir', dataDir, '--id', 'img-in', join(dir, 'no.img')]), 2,
    /^imgdist-index: IO_ERROR: cannot read IMAGE-FILE .*no\.img: ENOENT\n$/)
  oneLine('import of a directory', await cli(['import', '--data-dir', dataDir, '--id', 'img-in', dir]), 2,
    /^imgdist-index: IO_ERROR: IMAGE-FILE .* is not a regular file\n$/)
  oneLine('import --torrent FILE that is not there', await cli(['import', '--data-dir', dataDir, '--id', 'img-in', '--torrent', join(dir, 'no.torrent'), image]), 2,
    /^imgdist-index: IO_ERROR: cannot read torrent .*no\.torrent: ENOENT\n$/)
  oneLine('import --index FILE that is not there', await cli(['import', '--data-dir', dataDir, '--id', 'img-in', '--index', missing, image]), 2,
    /^imgdist-index: IO_ERROR: cannot read index .*no-such\.yaml: ENOENT\n$/)
  oneLine('import --id the index does not list', await cli(['import', '--data-dir', dataDir, '--id', 'img-other', image]), 2,
    /^imgdist-index: NOT_FOUND: index v\d+ lists no image "img-other"; check --id\n$/)
  t.same(await readdir(join(dataDir, 'images')), [], 'nothing imported')
})

interface FleetJson { sites: Array<{ name: string, lastSeen: string | null }>, totals: { sites: number } }

t.test('sites remove takes the site out of the fleet, whether the server runs or not', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  await fx.addImage('img-f', 2048)
  const a = fakeSite('site-a')
  const b = fakeSite('site-b')
  const add = async (s: FakeSite): Promise<void> => {
    const r = await cli(['sites', 'add', s.name, encodePublicKey(s.key.publicKey), '--data-dir', dataDir])
    t.equal(r.code, 0, r.stderr)
  }
  const report = async (url: string, s: FakeSite, sent: Date): Promise<void> => {
    const r = await fetch(`${url}/v1/reports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(siteReport(s, 'test-catalogue', [{ id: 'img-f', state: 'registered' }], sent)) })
    t.equal(r.status, 202, `${s.name} reports`)
  }
  const fleet = async (url: string): Promise<FleetJson> => await (await fetch(`${url}/v1/fleet`)).json() as FleetJson
  const t0 = Date.now()
  await add(a)
  await add(b)
  let s = await serve(t, dataDir)
  t.equal((await putIndex(s.url, await indexBytes(fx))).status, 200)
  await report(s.url, a, new Date(t0 - 3000))
  await report(s.url, b, new Date(t0 - 3000))
  t.equal((await fleet(s.url)).totals.sites, 2)

  // while the server runs (it holds LevelDB)
  t.equal((await cli(['sites', 'remove', 'site-a', '--data-dir', dataDir])).code, 0)
  const running = await fleet(s.url)
  t.same(running.sites.map((x) => x.name), ['site-b'], 'the removed site is gone from the fleet')
  t.equal(running.totals.sites, 1, 'and from the totals')
  await add(a)
  t.match((await fleet(s.url)).sites.find((x) => x.name === 'site-a'), { lastSeen: null }, 'added back, it starts afresh: its old report was dropped')

  // while the server is stopped
  await report(s.url, a, new Date(t0 - 2000))
  s.proc.kill('SIGTERM')
  t.equal(await s.exited, 0)
  t.equal((await cli(['sites', 'remove', 'site-a', '--data-dir', dataDir])).code, 0)
  await add(a)
  s = await serve(t, dataDir)
  const after = await fleet(s.url)
  t.match(after.sites.find((x) => x.name === 'site-a'), { lastSeen: null }, 'the report was dropped with the site')
  t.not(after.sites.find((x) => x.name === 'site-b')?.lastSeen, null, 'other sites keep theirs')
  s.proc.kill('SIGTERM')
  t.equal(await s.exited, 0)
})

t.test('import --index stages a release before its index is published', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  const entry = await fx.addImage('img-st', 70_000)
  const image = fx.images.get('img-st') as string
  const torrentFile = join(dir, 'st.torrent')
  await writeFile(torrentFile, fx.torrents.get('img-st') as Uint8Array)

  // an index not signed by this server's root's index keys stages nothing
  const other = await makeFixture(join(dir, 'other'))
  await other.addImage('img-st', 70_000)
  const foreign = await cli(['import', '--data-dir', dataDir, '--id', 'img-st', '--index', other.indexPath, image])
  t.equal(foreign.code, 1)
  t.match(foreign.stderr, /THRESHOLD_NOT_MET|SIGNATURE/)
  t.same(await readdir(join(dataDir, 'images')), [], 'nothing copied')

  const staged = await cli(['import', '--data-dir', dataDir, '--id', 'img-st', '--torrent', torrentFile, '--index', fx.indexPath, image])
  t.equal(staged.code, 0, staged.stderr)
  t.same(await readdir(join(dataDir, 'torrents')), [`${entry.infoHash}.torrent`])
  t.notOk((await readdir(dataDir)).includes('index.yaml'), 'staging publishes nothing')

  // publishing the index is then enough: the web seed serves the staged bytes without a rescan
  const { url } = await serve(t, dataDir)
  t.equal((await fetch(`${url}/v1/images/img-st`, { method: 'HEAD' })).status, 404, 'not served before its publication')
  t.equal((await putIndex(url, await indexBytes(fx))).status, 200)
  const head = await fetch(`${url}/v1/images/img-st`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), String(entry.size))

  // a later index giving the published id other bytes cannot be staged over the live file
  await fx.addImage('img-st', 70_001)
  const conflict = await cli(['import', '--data-dir', dataDir, '--id', 'img-st', '--index', fx.indexPath, fx.images.get('img-st') as string])
  t.equal(conflict.code, 1)
  t.match(conflict.stderr, /CONFLICT/)
  t.equal((await readFile(join(dataDir, 'images', 'img-st'))).byteLength, 70_000, 'the live file is untouched')
})

t.test('serve --no-seed: a file placed by hand is verified and served after SIGHUP', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  const entry = await fx.addImage('img-hand', 70_000)
  await fx.addImage('img-bad', 50_000)
  const s = await serve(t, dataDir)
  t.equal((await putIndex(s.url, await indexBytes(fx))).status, 200)
  await copyFile(fx.images.get('img-hand') as string, join(dataDir, 'images', 'img-hand')) // no torrent: the web seed needs none
  await writeFile(join(dataDir, 'images', 'img-bad'), Buffer.alloc(50_000))
  // The publish's own rescan may still be running and verify the file already (a race, not a
  // fault): what must hold is that it is never served unverified.
  const early = (await fetch(`${s.url}/v1/images/img-hand`, { method: 'HEAD' })).status
  const marked = (await readdir(join(dataDir, 'verified')).catch(() => [] as string[])).includes('img-hand.json')
  t.ok(early === 404 || (early === 200 && marked), `not served before it is verified (HEAD ${early}, marker ${marked ? 'present' : 'absent'})`)
  s.proc.kill('SIGHUP')
  await waitFor('img-hand to be served', async () => (await fetch(`${s.url}/v1/images/img-hand`, { method: 'HEAD' })).status === 200 ? true : undefined)
  const got = Buffer.from(await (await fetch(`${s.url}/v1/images/img-hand`)).arrayBuffer())
  t.equal(got.byteLength, entry.size)
  t.same(got, await readFile(fx.images.get('img-hand') as string), 'the signed bytes')
  t.same(await readdir(join(dataDir, 'verified')), ['img-hand.json'], 'a marker for the good file only')
  t.equal((await fetch(`${s.url}/v1/images/img-bad`, { method: 'HEAD' })).status, 404, 'a mismatching file is not served')
  s.proc.kill('SIGTERM')
  t.equal(await s.exited, 0)
})

function slowPut (url: string, path: string, data: Buffer, type: string): ReturnType<typeof request> {
  const u = new URL(url + path)
  const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'PUT', headers: { 'content-type': type, 'content-length': String(data.byteLength) } })
  req.on('error', () => {}) // the server is about to be killed
  req.write(data.subarray(0, Math.floor(data.byteLength / 2)))
  return req
}

async function putsInFlight (url: string): Promise<true | undefined> {
  const m = await (await fetch(url + '/metrics')).text()
  return /imgdist_index_http_requests_in_flight\{method="PUT"\} [1-9]/.test(m) ? true : undefined
}

t.test('kill -9 during a PUT leaves the previous catalogue served; SIGTERM drains and exits 0', async (t) => {
  const { dataDir, fx } = await makeServerDir(t)
  const entry = await fx.addImage('img-k', 4 * 1024 * 1024)
  const v1 = await indexBytes(fx)
  let s = await serve(t, dataDir)
  t.equal((await putIndex(s.url, v1)).status, 200)
  await fx.addImage('img-k2', 1000)
  const v2 = await indexBytes(fx)

  const slow = slowPut(s.url, '/v1/index.yaml', v2, 'application/yaml')
  await waitFor('the index PUT to be in flight', async () => await putsInFlight(s.url))
  s.proc.kill('SIGKILL')
  await s.exited
  slow.destroy()

  s = await serve(t, dataDir)
  t.equal(await (await fetch(s.url + '/v1/index.yaml')).text(), v1.toString(), 'v1 still served after kill -9')

  // Same for an image upload: the partial temp file is discarded at restart.
  const img = await readFile(fx.images.get('img-k') as string)
  const slowImg = slowPut(s.url, '/v1/images/img-k', img, 'application/octet-stream')
  await waitFor('the partial image temp file', async () => (await readdir(join(dataDir, 'images'))).some((n) => n.includes('.tmp-')) ? true : undefined)
  s.proc.kill('SIGKILL')
  await s.exited
  slowImg.destroy()
  s = await serve(t, dataDir)
  t.same(await readdir(join(dataDir, 'images')), [], 'partial upload removed at restart')
  t.equal((await fetch(s.url + '/v1/images/img-k')).status, 404)
  t.equal((await putIndex(s.url, v2)).status, 200, 'v2 can be published after the crash')
  t.equal((await fetch(s.url + '/v1/images/img-k', { method: 'PUT', body: body(img) })).status, 200)
  t.equal(Number((await fetch(s.url + '/v1/images/img-k', { method: 'HEAD' })).headers.get('content-length')), entry.size)

  s.proc.kill('SIGTERM')
  t.equal(await s.exited, 0, 'SIGTERM: drained, exit 0')
})
