import { cp, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { buildServer } from '../index-server/server.js'
import { makeFixture, type Fixture } from './helpers/catalogue-fixture.js'
import { indexBytes, indexCli as cli, makeServerDir, rootV2 } from './index-fixture.js'

/**
 * `imgdist-index init --force` replaces the whole catalogue: the old root chain, index and
 * verification markers go to DATA/replaced/<time>/, and a crash part-way leaves the old catalogue
 * or the new one. The server refuses to start on an index of another catalogue than its root's.
 */

const YAML = { 'content-type': 'application/yaml' }

/** A data dir of `test-catalogue` with roots 1 and 2, a published index and one verified image (the reviewer's w/e2). */
async function oldCatalogue (tt: Test): Promise<{ dataDir: string, dir: string, fx: Fixture, oldIndex: Buffer }> {
  const { dataDir, dir, fx } = await makeServerDir(tt)
  await fx.addImage('img-old', 4096)
  const app = await buildServer({ dataDir })
  const put2 = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: rootV2(fx).rotated })
  tt.equal(put2.statusCode, 200, put2.body)
  const oldIndex = await indexBytes(fx)
  tt.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: oldIndex })).statusCode, 200)
  tt.equal((await app.inject({ method: 'PUT', url: '/v1/images/img-old', payload: await readFile(fx.images.get('img-old') as string) })).statusCode, 200)
  await app.close()
  tt.same(await readdir(join(dataDir, 'root')), ['1.yaml', '2.yaml'])
  tt.same(await readdir(join(dataDir, 'verified')), ['img-old.json'])
  return { dataDir, dir, fx, oldIndex }
}

t.test('init --force moves the old chain, index and markers aside; the new catalogue publishes from v1', async (t) => {
  const { dataDir, dir, oldIndex } = await oldCatalogue(t)
  const other = await makeFixture(join(dir, 'other'), { name: 'other-cat' })
  await other.addImage('img-new', 2048)

  const plain = await cli(['init', '--data-dir', dataDir, '--root', other.rootPath])
  t.equal(plain.code, 1)
  t.match(plain.stderr, /ALREADY_INITIALISED/)

  const r = await cli(['init', '--data-dir', dataDir, '--root', other.rootPath, '--force'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /installed root v1 of catalogue "other-cat"/)
  t.match(r.stdout, /moved to .*replaced\//)
  t.same(await readdir(join(dataDir, 'root')), ['1.yaml'])
  t.equal(await readFile(join(dataDir, 'root', '1.yaml'), 'utf8'), await readFile(other.rootPath, 'utf8'))
  t.notOk((await readdir(dataDir)).includes('index.yaml'), 'the old index is gone from the data dir')
  t.same(await readdir(join(dataDir, 'verified')), [], 'no marker vouches for a file against the new catalogue')
  t.notOk((await readdir(dataDir)).includes('reinit.json'), 'journal removed')
  const [stamp, ...more] = await readdir(join(dataDir, 'replaced'))
  t.same(more, [])
  const backup = join(dataDir, 'replaced', stamp as string)
  t.same((await readdir(backup)).sort(), ['index.yaml', 'root', 'verified'])
  t.same(await readdir(join(backup, 'root')), ['1.yaml', '2.yaml'], 'the old chain is kept, not deleted')
  t.same(await readFile(join(backup, 'index.yaml')), oldIndex)
  t.same(await readdir(join(backup, 'verified')), ['img-old.json'])

  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  t.match((await app.inject({ url: '/healthz' })).json(), { catalogue: 'other-cat', rootVersion: 1, indexVersion: null })
  t.equal((await app.inject({ url: '/v1/index.yaml' })).statusCode, 404, 'the old catalogue\'s index is not served')
  const put = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(other) })
  t.equal(put.statusCode, 200, `the new catalogue's first index is accepted: ${put.body}`)
})

t.test('init --force is refused while a server runs on the data dir; nothing moves', async (t) => {
  const { dataDir, dir } = await oldCatalogue(t)
  const other = await makeFixture(join(dir, 'other'), { name: 'other-cat' })
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const r = await cli(['init', '--data-dir', dataDir, '--root', other.rootPath, '--force'])
  t.equal(r.code, 1)
  t.match(r.stderr, /STATE_LOCKED: .*stop it before init --force/)
  t.same(await readdir(join(dataDir, 'root')), ['1.yaml', '2.yaml'])
  t.ok((await readdir(dataDir)).includes('index.yaml'))
})

t.test('the server refuses to start on an index of another catalogue than its root', async (t) => {
  const { dataDir, dir, oldIndex } = await oldCatalogue(t)
  const other = await makeFixture(join(dir, 'other'), { name: 'other-cat' })
  t.equal((await cli(['init', '--data-dir', dataDir, '--root', other.rootPath, '--force'])).code, 0)
  await writeFile(join(dataDir, 'index.yaml'), oldIndex) // e.g. restored from an old backup
  await t.rejects(buildServer({ dataDir }), {
    code: 'DATA_CORRUPT',
    message: /index of catalogue "test-catalogue", but the trusted root .* is of "other-cat"/
  })
})

t.test('a replacement interrupted after its commit point is finished at the next start', async (t) => {
  const { dataDir, dir, oldIndex } = await oldCatalogue(t)
  const other = await makeFixture(join(dir, 'other'), { name: 'other-cat' })
  // The state a crash leaves after the journal was written and the old chain moved, but before
  // index.yaml, verified/ and the new root were moved; ensureDataDirs has made an empty root/ again.
  const staged = '.reinit-2026-01-01T00-00-00-000Z'
  await mkdir(join(dataDir, staged))
  await cp(other.rootPath, join(dataDir, staged, '1.yaml'))
  await mkdir(join(dataDir, 'replaced', 'x1'), { recursive: true })
  await rename(join(dataDir, 'root'), join(dataDir, 'replaced', 'x1', 'root'))
  await mkdir(join(dataDir, 'root'))
  await writeFile(join(dataDir, 'reinit.json'), JSON.stringify({ staged, backup: 'replaced/x1' }))

  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  t.match((await app.inject({ url: '/healthz' })).json(), { catalogue: 'other-cat', indexVersion: null }, 'the new catalogue, complete')
  t.same((await readdir(join(dataDir, 'replaced', 'x1'))).sort(), ['index.yaml', 'root', 'verified'])
  t.same(await readFile(join(dataDir, 'replaced', 'x1', 'index.yaml')), oldIndex)
  t.same(await readdir(join(dataDir, 'replaced', 'x1', 'root')), ['1.yaml', '2.yaml'])
  const names = await readdir(dataDir)
  t.notOk(names.includes('reinit.json') || names.includes(staged), 'journal and staged root gone')
})

t.test('a replacement interrupted before its commit point leaves the old catalogue', async (t) => {
  const { dataDir, dir } = await oldCatalogue(t)
  const other = await makeFixture(join(dir, 'other'), { name: 'other-cat' })
  const staged = '.reinit-2026-01-01T00-00-00-000Z'
  await mkdir(join(dataDir, staged))
  await cp(other.rootPath, join(dataDir, staged, '1.yaml'))
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  t.match((await app.inject({ url: '/healthz' })).json(), { catalogue: 'test-catalogue', rootVersion: 2, indexVersion: 1 })
  t.notOk((await readdir(dataDir)).includes(staged), 'the staged root is dropped')
})
