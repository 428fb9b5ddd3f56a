import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { buildServer } from '../index-server/server.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { generateKeyPair, type KeyPair } from '../lib/keys.js'
import type { IndexDocument } from '../lib/schema.js'
import { indexBytes, makeServerDir, rootV2 } from './index-fixture.js'

const YAML = { 'content-type': 'application/yaml' }

async function setup (tt: Test, opts: Parameters<typeof buildServer>[0] extends infer O ? Partial<O> : never = {}) {
  const sd = await makeServerDir(tt)
  const app = await buildServer({ dataDir: sd.dataDir, ...opts })
  tt.teardown(async () => await app.close())
  return { ...sd, app }
}

function sign (doc: IndexDocument, keys: KeyPair[]): IndexDocument {
  return keys.reduce((d, k) => addSignature(d, k), { signed: doc.signed, signatures: [] } as IndexDocument)
}

t.test('root endpoints serve the installed chain', async (t) => {
  const { app, fx } = await setup(t)
  const latest = await app.inject({ url: '/v1/root.yaml' })
  t.equal(latest.statusCode, 200)
  t.equal(latest.body, await readFile(fx.rootPath, 'utf8'), 'root bytes as installed')
  t.match(latest.headers['content-type'], /^application\/yaml/)
  t.match(latest.headers.etag, /^"[0-9a-f]{64}"$/)
  t.equal((await app.inject({ url: '/v1/root/1.yaml' })).body, latest.body)
  const missing = await app.inject({ url: '/v1/root/2.yaml' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'NOT_FOUND')
  t.equal((await app.inject({ url: '/v1/root/..%2F1.yaml' })).statusCode, 400, 'only <N>.yaml names')
  const none = await app.inject({ url: '/v1/index.yaml' })
  t.equal(none.statusCode, 404, 'no index before the first publish')
  const h = await app.inject({ url: '/healthz' })
  t.same(h.json(), { status: 'ok', catalogue: 'test-catalogue', rootVersion: 1, indexVersion: null, rootExpires: fx.root.signed.expires, indexExpires: null, expired: [], seeding: null })
})

t.test('PUT index, GET with ETag and If-None-Match', async (t) => {
  const { app, fx, dataDir } = await setup(t)
  await fx.addImage('img-a', 4096)
  const body = await indexBytes(fx)
  const put = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: body })
  t.equal(put.statusCode, 200, put.body)
  t.match(put.json(), { accepted: true, document: 'index', version: 1 })
  t.same(await readFile(join(dataDir, 'index.yaml')), body, 'stored byte for byte')
  const get = await app.inject({ url: '/v1/index.yaml' })
  t.equal(get.statusCode, 200)
  t.equal(get.body, body.toString())
  t.equal(get.headers['cache-control'], 'public, max-age=30, must-revalidate')
  const etag = get.headers.etag as string
  t.match(etag, /^"[0-9a-f]{64}"$/)
  const cond = await app.inject({ url: '/v1/index.yaml', headers: { 'if-none-match': etag } })
  t.equal(cond.statusCode, 304)
  t.equal(cond.body, '')
  t.equal((await app.inject({ url: '/v1/index.yaml', headers: { 'if-none-match': `"x", W/${etag}` } })).statusCode, 304, 'list and weak form')
  t.equal((await app.inject({ url: '/v1/index.yaml', headers: { 'if-none-match': '"other"' } })).statusCode, 200)

  for (const ct of ['application/x-yaml', 'text/yaml; charset=utf-8']) {
    await fx.addImage(`img-${ct.length}`, 100)
    const r = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': ct }, payload: await indexBytes(fx) })
    t.equal(r.statusCode, 200, `accepted as ${ct}`)
  }
  const again = await app.inject({ url: '/v1/index.yaml', headers: { 'if-none-match': etag } })
  t.equal(again.statusCode, 200, 'new version, new ETag')
  t.not(again.headers.etag, etag)
})

t.test('every refused index publish answers 4xx {code, message} and changes nothing on disk', async (t) => {
  const { app, fx, dataDir } = await setup(t)
  await fx.addImage('img-a', 1000) // v1
  t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })).statusCode, 200)
  const v1 = await indexBytes(fx)
  await fx.addImage('img-b', 1000) // v2, not yet published
  const v2 = fx.index
  const stranger = generateKeyPair()

  const tampered = structuredClone(v2)
  tampered.signed.images[0]!.size += 1
  const expired = sign(editIndex(v2, new Date(), (s) => ({ ...s, expires: '2000-01-01T00:00:00Z' })), fx.indexKeys)
  const otherName = sign(editIndex(v2, new Date(), (s) => ({ ...s, name: 'other' })), fx.indexKeys)
  const schemaBad = sign(editIndex(v2, new Date(), (s) => ({ ...s, images: [{ ...s.images[0]!, sha512: 'nope' }] })), fx.indexKeys)
  const huge = Buffer.alloc(8 * 1024 * 1024 + 10, 0x61)

  const cases: Array<[string, string | Buffer, Record<string, string>, number, string]> = [
    ['bad signature', serializeDocument(tampered), YAML, 403, 'SIGNATURE_INVALID'],
    ['no signature', serializeDocument({ signed: v2.signed, signatures: [] }), YAML, 403, 'SIGNATURE_MISSING'],
    ['signed by an unknown key', serializeDocument(sign(v2, [stranger])), YAML, 403, 'THRESHOLD_NOT_MET'],
    ['version below 1', serializeDocument(sign(editIndex({ ...v2, signed: { ...v2.signed, version: -1 } }, new Date(), (s) => s), fx.indexKeys)), YAML, 400, 'SCHEMA_INVALID'],
    ['same version again', v1, YAML, 409, 'VERSION_NOT_RAISED'],
    ['expired', serializeDocument(expired), YAML, 422, 'EXPIRED'],
    ['other catalogue', serializeDocument(otherName), YAML, 409, 'NAME_MISMATCH'],
    ['schema', serializeDocument(schemaBad), YAML, 400, 'SCHEMA_INVALID'],
    ['not YAML', 'signed: [unclosed', YAML, 400, 'YAML_INVALID'],
    ['a root sent as index', await readFile(fx.rootPath), YAML, 400, 'TYPE_UNKNOWN'],
    ['too large', huge, YAML, 413, 'TOO_LARGE'],
    ['JSON content type', JSON.stringify(v2), { 'content-type': 'application/json' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['text/plain content type', serializeDocument(v2), { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['unknown content type', serializeDocument(v2), { 'content-type': 'application/x-whatever' }, 415, 'UNSUPPORTED_MEDIA_TYPE']
  ]
  for (const [what, payload, headers, status, code] of cases) {
    const r = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers, payload })
    t.equal(r.statusCode, status, `${what}: status`)
    t.equal(r.json().code, code, `${what}: code`)
    t.type(r.json().message, 'string')
    t.same(await readFile(join(dataDir, 'index.yaml')), v1, `${what}: index.yaml unchanged`)
  }
  t.same((await readdir(dataDir)).filter((n) => n.includes('.tmp-')), [], 'no temp files left')

  // A real rollback: publish v3, then try v2.
  await fx.addImage('img-c', 1000) // v3
  t.equal((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })).statusCode, 200)
  const rb = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: serializeDocument(v2) })
  t.equal(rb.statusCode, 409)
  t.equal(rb.json().code, 'ROLLBACK')
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /imgdist_index_publishes_total\{document="index",result="refused",code="SIGNATURE_INVALID"\} 1/)
  t.match(metrics, /imgdist_index_publishes_total\{document="index",result="refused",code="TOO_LARGE"\} 1/)
  t.match(metrics, /imgdist_index_publishes_total\{document="index",result="refused",code="UNSUPPORTED_MEDIA_TYPE"\} 3/)
  t.match(metrics, /imgdist_index_publishes_total\{document="index",result="accepted",code=""\} 2/)
  t.match(metrics, /imgdist_index_catalogue_version\{document="index"\} 3/)
})

t.test('an index signed under an expired root is refused', async (t) => {
  const { app, fx } = await setup(t)
  await fx.addImage('img-a', 100)
  const later = new Date(Date.now() + 400 * 86400_000)
  await app.close()
  const app2 = await buildServer({ dataDir: app.imgdist.catalogue.paths.dir, now: () => later })
  t.teardown(async () => await app2.close())
  const r = await app2.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: await indexBytes(fx) })
  t.equal(r.statusCode, 422)
  t.equal(r.json().code, 'EXPIRED')
  t.match(r.json().message, /root/)
})

t.test('PUT root: rotation rule, chain served, refusals', async (t) => {
  const { app, fx, dataDir } = await setup(t)
  const { v2, newRootKey, rotated: good } = rootV2(fx)
  const onlyNew = addSignature(v2, newRootKey)
  const r1 = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: serializeDocument(onlyNew) })
  t.equal(r1.statusCode, 403, 'new root not signed by the old root keys')
  t.equal(r1.json().code, 'THRESHOLD_NOT_MET')
  t.same(await readdir(join(dataDir, 'root')), ['1.yaml'])

  const gap = addSignature(addSignature({ ...v2, signed: { ...v2.signed, version: 3 } }, fx.rootKeys[0] as KeyPair), newRootKey)
  const r2 = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: serializeDocument(gap) })
  t.equal(r2.statusCode, 409)
  t.equal(r2.json().code, 'VERSION_GAP')

  const same = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: await readFile(fx.rootPath) })
  t.equal(same.statusCode, 409)
  t.equal(same.json().code, 'VERSION_NOT_RAISED', 'the trusted root sent again is a repeat, not a rollback')

  const ok = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: good })
  t.equal(ok.statusCode, 200, ok.body)
  t.equal((await app.inject({ url: '/v1/root.yaml' })).body, good)
  t.equal((await app.inject({ url: '/v1/root/2.yaml' })).body, good)
  t.equal((await app.inject({ url: '/v1/root/1.yaml' })).body, await readFile(fx.rootPath, 'utf8'))
  t.equal((await app.inject({ url: '/v1/root/2.yaml' })).headers['cache-control'], 'public, max-age=86400, immutable')

  const big = await app.inject({ method: 'PUT', url: '/v1/root.yaml', headers: YAML, payload: Buffer.alloc(1024 * 1024 + 1, 0x20) })
  t.equal(big.statusCode, 413)
  t.equal(big.json().code, 'TOO_LARGE')

  // The chain survives a restart.
  await app.close()
  const app2 = await buildServer({ dataDir })
  t.teardown(async () => await app2.close())
  t.equal((await app2.inject({ url: '/healthz' })).json().rootVersion, 2)
})

t.test('PUTs are rate limited per client', async (t) => {
  const { app } = await setup(t, { rateLimit: { publishMax: 2, windowMs: 60_000 } })
  const codes: number[] = []
  for (let i = 0; i < 3; i++) codes.push((await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: 'x: 1' })).statusCode)
  t.same(codes, [400, 400, 429])
  const r = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: YAML, payload: 'x: 1' })
  t.equal(r.json().code, 'RATE_LIMITED')
  t.equal((await app.inject({ url: '/v1/root.yaml' })).statusCode, 200, 'GETs are not limited')
})

t.test('unknown routes answer 404 JSON', async (t) => {
  const { app } = await setup(t)
  const r = await app.inject({ url: '/v2/nothing' })
  t.equal(r.statusCode, 404)
  t.equal(r.json().code, 'NOT_FOUND')
})
