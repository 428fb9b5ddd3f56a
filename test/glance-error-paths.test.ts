import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino, type Logger } from 'pino'
import { MockAgent } from 'undici'
import { createGlanceTarget, GlanceError, type GlanceTarget } from '../agent/targets/glance/glance-target.js'
import type { TargetImage } from '../agent/targets/target.js'

/**
 * Error paths of the glance target against undici's MockAgent (a real Glance cannot be made to
 * answer 503 or 413 on demand): token expiry, 401 then success, 503 with Retry-After, 413, a
 * hash mismatch, and the order create(private, hidden) → upload → verify → un-hide and widen.
 */

const KS = 'http://keystone.test:5000'
const GL = 'http://glance.test:9292'
const PROJECT = 'p1'

const dir = mkdtempSync(join(tmpdir(), 'imgdist-glance-unit-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const bytes = Buffer.from('imgdist test image bytes\n'.repeat(100))
const filePath = join(dir, 'img.raw')
writeFileSync(filePath, bytes)
const sha512 = createHash('sha512').update(bytes).digest('hex')
const img: TargetImage = {
  catalogue: 'cat',
  indexVersion: 1,
  endorsers: ['e'.repeat(64)],
  filePath,
  entry: {
    id: 'img-1', name: 'Img', version: '2', sha512, size: bytes.length, infoHash: '0'.repeat(40), torrent: 't/x.torrent',
    diskFormat: 'qcow2', containerFormat: 'bare', minDisk: 0, minRam: 0, arch: 'x86_64', os: 'linux', properties: {}
  }
}

function tokenBody (expiresInMs: number): unknown {
  return {
    token: {
      expires_at: new Date(Date.now() + expiresInMs).toISOString(),
      project: { id: PROJECT, name: 'demo' },
      user: { id: 'u1' },
      catalog: [{ type: 'image', endpoints: [{ interface: 'public', region_id: 'R1', url: `${GL}/` }, { interface: 'internal', region_id: 'R1', url: 'http://internal.test' }] }]
    }
  }
}

interface Setup { mock: MockAgent, target: GlanceTarget, tokens: string[] }

function setup (extra: Record<string, unknown> = {}, logger?: Logger): Setup {
  const mock = new MockAgent()
  mock.disableNetConnect()
  const target = createGlanceTarget({
    type: 'glance', name: 'unit', retryBaseMs: 1, retryMaxMs: 50, maxAttempts: 3, authFailureHoldMs: 60_000, ...extra,
    auth: { authUrl: KS, username: 'demo', password: 'secret-pw', projectName: 'demo' }
  }, { dispatcher: mock, env: {}, homeDir: dir, cwd: dir, logger })
  return { mock, target, tokens: [] }
}

function issueTokens (s: Setup, ...lifetimesMs: number[]): void {
  lifetimesMs.forEach((life, i) => {
    s.mock.get(KS).intercept({ path: '/v3/auth/tokens', method: 'POST' }).reply(201, (opts) => {
      s.tokens.push(String(opts.body))
      return tokenBody(life) as object
    }, { headers: { 'x-subject-token': `tok-${i + 1}`, 'content-type': 'application/json' } })
  })
}

const json = { headers: { 'content-type': 'application/json' } }
const listPath = (p: string): boolean => p.startsWith('/v2/images?')

t.test('a token close to expiry is re-issued before the next request', async (t) => {
  const s = setup()
  issueTokens(s, 60_000, 3600_000) // 1 minute left is inside the renewal margin
  const seen: string[] = []
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(200, (o) => {
    seen.push(String((o.headers as Record<string, string>)['x-auth-token']))
    return { images: [] }
  }, json).times(4)
  t.equal(await s.target.find(img), undefined)
  t.equal(s.tokens.length, 2, 'a second token was issued')
  t.equal(seen.at(-1), 'tok-2', 'requests use the fresh token')
  t.ok(s.tokens[0]?.includes('"password"') && s.tokens[0]?.includes('"project"'), 'password auth with project scope')
  await s.target.close()
})

t.test('Glance 401 (token revoked early): one re-issue, then success', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000, 3600_000)
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(401, 'Authentication required')
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(200, { images: [] }, json).times(3)
  t.equal(await s.target.find(img), undefined)
  t.equal(s.tokens.length, 2)
  await s.target.close()
})

t.test('Keystone 401: AUTH_FAILED, not retryable, held without asking Keystone again', async (t) => {
  const s = setup()
  s.mock.get(KS).intercept({ path: '/v3/auth/tokens', method: 'POST' })
    .reply(401, { error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' } }, json)
  const err = await s.target.find(img).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'AUTH_FAILED')
  t.equal(err.retryable, false)
  t.match(err.message, /requires authentication/)
  t.notOk(err.message.includes('secret-pw'))
  // a second call would hit disableNetConnect if it asked Keystone again
  const again = await s.target.find(img).catch((e: unknown) => e) as GlanceError
  t.equal(again.code, 'AUTH_FAILED')
  await s.target.close()
})

t.test('503 with Retry-After is retried after the server\'s delay, then succeeds', async (t) => {
  const logs: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { logs.push(JSON.parse(line)) } })
  const s = setup({ retryMaxMs: 5000 }, logger)
  issueTokens(s, 3600_000)
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(503, 'busy', { headers: { 'retry-after': '1' } })
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(200, { images: [] }, json).times(3)
  t.equal(await s.target.find(img), undefined)
  t.match(logs, [{ msg: 'glance request failed, retrying', status: 503, waitMs: 1000, target: 'unit' }], 'waited the Retry-After second')
  t.notOk(JSON.stringify(logs).includes('tok-1'), 'the token is never logged')
  await s.target.close()
})

t.test('503 for longer than the attempts: GLANCE_UNAVAILABLE, retryable', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000)
  s.mock.get(GL).intercept({ path: listPath, method: 'GET' }).reply(503, '<html><body><h1>503 Service Unavailable</h1>No server is available</body></html>').times(3)
  const err = await s.target.find(img).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'GLANCE_UNAVAILABLE')
  t.equal(err.retryable, true)
  t.match(err.message, /503 Service Unavailable No server is available/)
  t.equal(s.target.status().lastError?.code, 'GLANCE_UNAVAILABLE')
  await s.target.close()
})

function registerFlow (s: Setup, upload: { status: number, body: string }): { calls: string[] } {
  const calls: string[] = []
  const g = s.mock.get(GL)
  g.intercept({ path: listPath, method: 'GET' }).reply(200, () => { calls.push('list'); return { images: [] } }, json).times(3)
  g.intercept({ path: '/v2/images', method: 'POST' }).reply(201, (o) => {
    const body = JSON.parse(String(o.body))
    calls.push(`create ${body.visibility as string}${body.os_hidden === true ? ' hidden' : ''}`)
    return { id: 'img-uuid', status: 'queued', visibility: 'private' }
  }, json)
  g.intercept({ path: '/v2/images/img-uuid/file', method: 'PUT' }).reply(upload.status, (o) => {
    calls.push(`upload ${(o.headers as Record<string, string>)['content-type']}`)
    return upload.body
  })
  return { calls }
}

t.test('413 on upload: GLANCE_TOO_LARGE with Glance\'s message, the queued image removed', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000)
  const { calls } = registerFlow(s, { status: 413, body: JSON.stringify({ message: 'Denying attempt to upload image larger than 1 bytes.' }) })
  s.mock.get(GL).intercept({ path: '/v2/images/img-uuid', method: 'DELETE' }).reply(204, () => { calls.push('delete'); return '' })
  const err = await s.target.register(img).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'GLANCE_TOO_LARGE')
  t.equal(err.retryable, false)
  t.equal(err.imageId, 'img-uuid')
  t.match(err.message, /larger than 1 bytes/)
  t.same(calls.slice(-3), ['create private hidden', 'upload application/octet-stream', 'delete'])
  t.match(s.target.status().lastError, { code: 'GLANCE_TOO_LARGE', imageId: 'img-uuid' })
  await s.target.close()
})

t.test('Glance computed another sha512: GLANCE_HASH_MISMATCH and the image is deleted', async (t) => {
  const s = setup({ visibility: 'public' })
  issueTokens(s, 3600_000)
  const { calls } = registerFlow(s, { status: 204, body: '' })
  s.mock.get(GL).intercept({ path: '/v2/images/img-uuid', method: 'GET' })
    .reply(200, { id: 'img-uuid', status: 'active', size: bytes.length, os_hash_algo: 'sha512', os_hash_value: 'f'.repeat(128), visibility: 'private' }, json)
  s.mock.get(GL).intercept({ path: '/v2/images/img-uuid', method: 'DELETE' }).reply(204, () => { calls.push('delete'); return '' })
  const err = await s.target.register(img).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'GLANCE_HASH_MISMATCH')
  t.equal(calls.at(-1), 'delete', 'deleted, never widened to public')
  await s.target.close()
})

t.test('un-hidden and widened only after the read-back check, in one PATCH', async (t) => {
  const s = setup({ visibility: 'shared' })
  issueTokens(s, 3600_000)
  const { calls } = registerFlow(s, { status: 204, body: '' })
  const active = { id: 'img-uuid', status: 'active', size: bytes.length, os_hash_algo: 'sha512', os_hash_value: sha512, imgdist_catalogue: 'cat', imgdist_id: 'img-1' }
  s.mock.get(GL).intercept({ path: '/v2/images/img-uuid', method: 'GET' }).reply(200, () => { calls.push('read back'); return { ...active, visibility: 'private', os_hidden: true, imgdist_unverified: 'x' } }, json)
  s.mock.get(GL).intercept({ path: '/v2/images/img-uuid', method: 'PATCH' }).reply(200, (o) => {
    calls.push(`patch ${(o.headers as Record<string, string>)['content-type']} ${String(o.body)}`)
    return { ...active, visibility: 'shared', os_hidden: false }
  }, json)
  const reg = await s.target.register(img)
  t.match(reg, { ref: 'img-uuid', adopted: false, visibility: 'shared' })
  t.same(calls.filter((c) => c !== 'list'), [
    'create private hidden', 'upload application/octet-stream', 'read back',
    'patch application/openstack-images-v2.1-json-patch [{"op":"remove","path":"/imgdist_unverified"},' +
      '{"op":"replace","path":"/os_hidden","value":false},{"op":"replace","path":"/visibility","value":"shared"}]'
  ])
  await s.target.close()
})

t.test('a connection refused on create is retried; a 400 is not', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000)
  const g = s.mock.get(GL)
  g.intercept({ path: listPath, method: 'GET' }).reply(200, { images: [] }, json).times(3)
  g.intercept({ path: '/v2/images', method: 'POST' }).replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
  g.intercept({ path: '/v2/images', method: 'POST' }).reply(400, JSON.stringify({ message: "Invalid value 'x' for disk_format" }))
  const err = await s.target.register(img).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'GLANCE_REQUEST_FAILED')
  t.equal(err.retryable, false)
  t.match(err.message, /400: Invalid value 'x' for disk_format/)
  await s.target.close()
})

t.test('register() first removes its own half-registered image of an earlier attempt', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000)
  const calls: string[] = []
  const g = s.mock.get(GL)
  const stuck = { id: 'old', status: 'saving', imgdist_catalogue: 'cat', imgdist_id: 'img-1', imgdist_sha512: sha512 }
  g.intercept({ path: (p) => listPath(p) && p.includes('imgdist_id=img-1'), method: 'GET' }).reply(200, { images: [stuck] }, json).times(2)
  g.intercept({ path: (p) => listPath(p) && p.includes('os_hash_value='), method: 'GET' }).reply(200, { images: [] }, json)
  g.intercept({ path: '/v2/images/old', method: 'DELETE' }).reply(204, () => { calls.push('delete old'); return '' })
  g.intercept({ path: '/v2/images', method: 'POST' }).reply(500, () => { calls.push('create'); return 'boom' })
  const err = await s.target.register(img).catch((e: unknown) => e) as GlanceError
  t.same(calls, ['delete old', 'create'], 'a 500 on create is not blindly retried (it might have created one)')
  t.equal(err.retryable, true)
  await s.target.close()
})

t.test('properties Glance refuses: GLANCE_PROPERTY_INVALID naming each, nothing created (the rule signer add applies too)', async (t) => {
  const s = setup()
  issueTokens(s, 3600_000)
  const g = s.mock.get(GL)
  let created = 0
  g.intercept({ path: listPath, method: 'GET' }).reply(200, { images: [] }, json).times(3)
  g.intercept({ path: '/v2/images', method: 'POST' }).reply(201, () => { created++; return { id: 'x', status: 'queued' } }, json)
  const properties = { visibility: 'public', os_glance_import_method: 'x', imgdist_sha512: '00', os_distro: 'x'.repeat(256), hw_firmware_type: 'uefi' }
  const err = await s.target.register({ ...img, entry: { ...img.entry, properties } }).catch((e: unknown) => e) as GlanceError
  t.equal(err.code, 'GLANCE_PROPERTY_INVALID')
  t.match(err.message, 'visibility: reserved; os_glance_import_method: reserved; imgdist_sha512: reserved; os_distro: longer than 255 characters')
  t.notMatch(err.message, 'hw_firmware_type')
  t.equal(created, 0, 'no image created')
  await s.target.close()
})
