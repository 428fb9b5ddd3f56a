import { writeFile } from 'node:fs/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createGlanceTarget, GlanceError, type GlanceTarget } from '../agent/targets/glance/glance-target.js'
import { CATALOGUE, ENDORSERS, imagesOf, makeImage } from './helpers/glance-image.js'
import { missingOpenStackPackages, passwordToken, startOpenStack, type OpenStack } from './helpers/glance-openstack.js'

/**
 * The glance target against a real Keystone and a real Glance (Debian's packages), started once
 * for this file: password and application-credential auth, register + verify, adoption, retiring,
 * a Glance crash mid-upload, and refused credentials. test/glance-hidden.test.ts: what users see
 * of an image before, during and after its checks.
 */

async function main (): Promise<void> {
  const os: OpenStack = await startOpenStack()
  t.teardown(async () => await os.stop())
  t.comment(`keystone ready in ${os.startSeconds.keystone.toFixed(1)}s, glance in ${os.startSeconds.glance.toFixed(1)}s`)
  const work = mkdtempSync(join(tmpdir(), 'imgdist-glance-it-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const targets: GlanceTarget[] = []
  t.teardown(async () => { for (const x of targets) await x.close() })

  // the three ways OpenStack users keep credentials
  const cloudsFile = join(work, 'clouds.yaml')
  await writeFile(cloudsFile, [
    'clouds:',
    '  it-appcred:',
    '    auth_type: v3applicationcredential',
    '    region_name: RegionOne',
    '    interface: internal',
    '    auth:',
    `      auth_url: ${os.keystoneUrl.replace(/\/v3$/, '')}`,
    `      application_credential_id: ${os.appCred.id}`,
    `      application_credential_secret: ${os.appCred.secret}`,
    ''
  ].join('\n'))
  const openrc = { ...os.demoOpenrc(), OS_REGION_NAME: 'RegionOne', OS_INTERFACE: 'public' }
  const fast = { retryBaseMs: 200, retryMaxMs: 1000, maxAttempts: 3 }
  const passwordTarget = (extra: Record<string, unknown> = {}, site?: string): GlanceTarget => {
    const x = createGlanceTarget({ type: 'glance', name: 'pw', ...fast, ...extra }, { env: openrc, homeDir: work, cwd: work, site })
    targets.push(x)
    return x
  }
  const appCredTarget = (extra: Record<string, unknown> = {}, site?: string): GlanceTarget => {
    const x = createGlanceTarget({ type: 'glance', name: 'ac', cloud: 'it-appcred', ...fast, ...extra },
      { env: { OS_CLIENT_CONFIG_FILE: cloudsFile }, homeDir: work, cwd: work, site })
    targets.push(x)
    return x
  }
  // hidden ones too: an upload in flight is os_hidden
  const ofId = async (id: string): Promise<any[]> => await imagesOf(os, id)

  const img = await makeImage(work, 'alma-9', 3 * 1024 * 1024 + 17, { os_version: '9.4' })

  await t.test('password auth (openrc): register ends active with Glance\'s own sha512, size, properties, visibility', async (t) => {
    const target = passwordTarget({ visibility: 'community', tags: ['imgdist', 'endorsed'] })
    t.equal(await target.find(img), undefined, 'nothing to adopt yet')
    const reg = await target.register(img)
    t.equal(reg.adopted, false)
    const { body: g } = await os.glanceGet(`/v2/images/${reg.ref}`)
    t.equal(g.status, 'active')
    t.equal(g.size, img.entry.size)
    t.equal(g.os_hash_algo, 'sha512')
    t.equal(g.os_hash_value, img.entry.sha512)
    t.equal(g.visibility, 'community')
    t.equal(g.os_hidden, false, 'no longer hidden, once verified')
    t.notOk('imgdist_unverified' in g, 'nor marked unverified')
    t.equal(g.name, 'Test alma-9-1.0')
    t.equal(g.disk_format, 'raw')
    t.equal(g.min_disk, 1)
    t.equal(g.min_ram, 256)
    t.match(g, {
      imgdist_catalogue: CATALOGUE, imgdist_id: 'alma-9', imgdist_version: '1.0', imgdist_sha512: img.entry.sha512,
      imgdist_endorsers: ENDORSERS.join(','), hw_disk_bus: 'virtio', os_version: '9.4', architecture: 'x86_64', os_distro: 'alma'
    })
    t.same([...g.tags].sort(), ['endorsed', 'imgdist'])
    t.equal(g.owner, os.demo.projectId)
    const st = target.status()
    t.equal(st.lastImageId, reg.ref)
    t.equal(st.endpoint, os.glanceUrl, 'endpoint from the service catalog')
    t.notOk(JSON.stringify(st).includes(os.demo.password), 'no secret in the operator view')
  })

  await t.test('application credential (clouds.yaml): a fresh target adopts the image instead of uploading', async (t) => {
    const target = appCredTarget({ visibility: 'community' })
    const found = await target.find(img)
    t.ok(found)
    t.equal(found?.adopted, true)
    const again = await target.register(img)
    t.equal(again.ref, found?.ref, 'register() adopts too')
    t.equal((await ofId('alma-9')).length, 1, 'still exactly one image')
    t.notOk(JSON.stringify(target.status()).includes(os.appCred.secret), 'no secret in the operator view')
  })

  await t.test('an image of the project with the same sha512 is adopted but never touched', async (t) => {
    const foreign = await makeImage(work, 'foreign', 65536)
    const token = await os.demoToken()
    const headers = { 'x-auth-token': token, 'content-type': 'application/json' }
    const created = await (await fetch(`${os.glanceUrl}/v2/images`, {
      method: 'POST', headers, body: JSON.stringify({ name: 'uploaded by hand', disk_format: 'raw', container_format: 'bare' })
    })).json() as { id: string }
    const { readFile } = await import('node:fs/promises')
    const put = await fetch(`${os.glanceUrl}/v2/images/${created.id}/file`, {
      method: 'PUT', headers: { 'x-auth-token': token, 'content-type': 'application/octet-stream' }, body: await readFile(foreign.filePath as string)
    })
    t.equal(put.status, 204)
    const target = passwordTarget()
    const reg = await target.find(foreign)
    t.equal(reg?.ref, created.id)
    t.equal(reg?.adopted, true)
    await target.retire(foreign, reg as { ref: string, adopted: boolean }, 'delete')
    const { status, body } = await os.glanceGet(`/v2/images/${created.id}`)
    t.equal(status, 200, 'a foreign image is never retired')
    t.equal(body.status, 'active')
  })

  await t.test('revocation retires per action: deactivate, hide, delete', async (t) => {
    const target = appCredTarget({ visibility: 'community' })
    for (const action of ['deactivate', 'hide', 'delete'] as const) {
      const x = await makeImage(work, `retire-${action}`, 128 * 1024)
      const reg = await target.register(x)
      await target.retire(x, reg, action)
      await target.retire(x, reg, action) // idempotent
      const { status, body } = await os.glanceGet(`/v2/images/${reg.ref}`)
      if (action === 'deactivate') t.equal(body.status, 'deactivated', 'deactivated')
      if (action === 'hide') t.match(body, { os_hidden: true, visibility: 'private', status: 'active' }, 'hidden and private')
      if (action === 'delete') t.equal(status, 404, 'deleted')
    }
  })

  await t.test('Glance killed mid-upload: a clean retry, no duplicate, no queued orphan; another site\'s upload left alone', async (t) => {
    const big = await makeImage(work, 'crash-me', 24 * 1024 * 1024)
    // a bandwidth cap keeps the upload in flight long enough to kill Glance under it
    const slow = passwordTarget({ maxUploadBytesPerSecond: 4 * 1024 * 1024, maxAttempts: 2 }, 'it-site')
    const pending = slow.register(big).then(() => undefined, (err: unknown) => err)
    const deadline = Date.now() + 60_000
    let saving: any
    while (saving === undefined && Date.now() < deadline) {
      saving = (await ofId('crash-me')).find((i) => i.status === 'saving')
      if (saving === undefined) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.ok(saving, 'the upload is in progress (status saving)')
    await os.stopGlance({ kill: true })
    const err = await pending
    t.type(err, GlanceError)
    t.equal((err as GlanceError).retryable, true, `retryable: ${(err as Error).message}`)
    t.equal(slow.status().lastError?.code, (err as GlanceError).code, 'the operator view shows the error')
    await os.startGlance()
    const orphan = await ofId('crash-me')
    t.same(orphan.map((i) => i.status), ['saving'], 'the crash left an orphan behind')
    t.equal(orphan[0]?.imgdist_site, 'it-site', 'tagged with the site that made it')
    t.equal(orphan[0]?.os_hidden, true, 'hidden, as every upload before its check')
    // the same image half-registered by another site's agent in this project (its upload in flight)
    const created = await fetch(`${os.glanceUrl}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-token': await os.demoToken() },
      body: JSON.stringify({
        name: 'crash-me (other site)', disk_format: 'raw', container_format: 'bare', visibility: 'private',
        imgdist_catalogue: CATALOGUE, imgdist_id: 'crash-me', imgdist_version: big.entry.version, imgdist_sha512: big.entry.sha512, imgdist_endorsers: 'x', imgdist_site: 'other-site'
      })
    })
    t.equal(created.status, 201, 'another site\'s queued image made')
    const foreign = (await created.json() as { id: string }).id

    const fresh = appCredTarget({}, 'it-site')
    await fresh.recover()
    t.same((await ofId('crash-me')).map((i) => i.id), [foreign], 'recover() removed our orphan and left the other site\'s upload')
    const reg = await fresh.register(big)
    const after = await ofId('crash-me')
    const active = after.filter((i) => i.status === 'active')
    t.equal(active.length, 1, 'exactly one active image')
    t.equal(active[0].id, reg.ref)
    t.equal(active[0].os_hash_value, big.entry.sha512)
    t.equal(active[0].imgdist_site, 'it-site')
    t.same(after.filter((i) => i.status !== 'active').map((i) => [i.id, i.status]), [[foreign, 'queued']], 'registering did not touch it either')
    t.equal((await fetch(`${os.glanceUrl}/v2/images/${foreign}`, { method: 'DELETE', headers: { 'x-auth-token': await os.demoToken() } })).status, 204)
  })

  await t.test('public visibility: refused with member alone, then granted as docs/glance.md says, without a second upload', async (t) => {
    const pub = await makeImage(work, 'public-one', 256 * 1024)
    const refused = await appCredTarget({ visibility: 'public' }).register(pub).catch((e: unknown) => e) as GlanceError
    t.equal(refused.code, 'GLANCE_FORBIDDEN', `member may not publicize (${refused.message})`)
    t.equal(refused.retryable, false, 'not retried within the attempt')
    t.match(refused.message, /visibility public.*publicize_image.*docs\/glance\.md/, 'the message says which policy rule and where to read more')
    t.notMatch(refused.message, /<br/, 'with Glance\'s HTML line breaks taken out')
    t.match(refused.message, /stays hidden and private/)
    const left = await ofId('public-one')
    t.same(left.map((i) => [i.status, i.os_hidden, i.visibility, i.os_hash_value]), [['active', true, 'private', pub.entry.sha512]],
      'the verified upload stays, hidden and private (the un-hide and the widening are one PATCH)')

    // the operator's fix, as docs/glance.md gives it: one policy rule, a role, a new application credential
    await writeFile(join(os.dir, 'glance', 'policy.d', 'imgdist.yaml'), '"publicize_image": "role:admin or role:image_publisher"\n')
    const adminTok = (await passwordToken(os.keystoneUrl, os.admin.username, os.admin.password, os.admin.project)).token
    const ks = async (method: string, path: string, token: string, body?: unknown): Promise<any> => {
      const r = await fetch(`${os.keystoneUrl}${path}`, { method, headers: { 'x-auth-token': token, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
      t.ok(r.ok, `keystone ${method} ${path}: ${r.status}`)
      return r.status === 204 ? undefined : await r.json()
    }
    const roleId = (await ks('POST', '/roles', adminTok, { role: { name: 'image_publisher' } })).role.id as string
    await ks('PUT', `/projects/${os.demo.projectId}/users/${os.demo.userId}/roles/${roleId}`, adminTok)
    // an application credential keeps the roles it was made with: the agent needs a new one
    const demoTok = (await passwordToken(os.keystoneUrl, os.demo.username, os.demo.password, os.demo.project)).token
    const ac = (await ks('POST', `/users/${os.demo.userId}/application_credentials`, demoTok,
      { application_credential: { name: 'imgdist-publisher', roles: [{ name: 'member' }, { name: 'image_publisher' }] } })).application_credential
    const publisherClouds = join(work, 'clouds-publisher.yaml')
    await writeFile(publisherClouds, ['clouds:', '  pub:', '    auth_type: v3applicationcredential', '    region_name: RegionOne', '    auth:',
      `      auth_url: ${os.keystoneUrl}`, `      application_credential_id: ${String(ac.id)}`, `      application_credential_secret: ${String(ac.secret)}`, ''].join('\n'))
    const publisher = createGlanceTarget({ type: 'glance', name: 'pub', cloud: 'pub', visibility: 'public', ...fast },
      { env: { OS_CLIENT_CONFIG_FILE: publisherClouds }, homeDir: work, cwd: work })
    targets.push(publisher)
    const reg = await publisher.register(pub)
    t.equal(reg.ref, left[0].id, 'the retry widens the image already uploaded')
    t.equal(reg.adopted, true)
    const { body: g } = await os.glanceGet(`/v2/images/${reg.ref}`)
    t.match(g, { status: 'active', visibility: 'public', os_hidden: false, os_hash_value: pub.entry.sha512 }, 'now public and listed, with the signed sha512')
    t.equal((await ofId('public-one')).length, 1, 'still one image')
  })

  await t.test('a wrong password is a clear AUTH_FAILED, not retried', async (t) => {
    const target = passwordTarget({ auth: { password: 'not-the-password' } })
    const err = await target.find(img).catch((e: unknown) => e)
    t.type(err, GlanceError)
    t.equal((err as GlanceError).code, 'AUTH_FAILED')
    t.equal((err as GlanceError).retryable, false)
    t.notOk((err as Error).message.includes('not-the-password'), 'the secret is not in the message')
    const again = await target.register(img).catch((e: unknown) => e)
    t.equal((again as GlanceError).code, 'AUTH_FAILED', 'held: Keystone is not asked again at once')
    t.equal(target.status().lastError?.code, 'AUTH_FAILED')
  })
}

const missing = missingOpenStackPackages()
if (missing.length > 0) {
  t.comment(`SKIPPING the Glance/Keystone integration tests: missing Debian packages: ${missing.join(' ')}`)
  t.comment('install them with: bash test/setup/install-tools.sh')
  t.plan(0, `missing Debian packages ${missing.join(' ')} (run test/setup/install-tools.sh)`)
} else {
  await main()
}
