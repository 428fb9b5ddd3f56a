import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { editIndex, upsertImage } from '../lib/catalogue-edit.js'
import { keyIdOf } from '../lib/keys.js'
import type { ImageEntry } from '../lib/schema.js'
import { startOrigin, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, waitFor, writeAgentConfig, type AgentProc } from './helpers/agent-proc.js'
import { makeFixture, type Fixture } from './helpers/catalogue-fixture.js'
import { missingOpenStackPackages, startOpenStack, type OpenStack } from './helpers/glance-openstack.js'

/**
 * End to end through the real daemon: a real Keystone + Glance (one start for the file), an
 * origin (index stand-in + origin seed), and spawned `imgdist-agent run` processes whose config
 * has a `glance` target naming a cloud of a clouds.yaml found through OS_CLIENT_CONFIG_FILE.
 * Register → adopt by a second agent → refused credentials → revocation retires it in Glance.
 */

const TARGET = 'cloud-a'
const WRONG_PASSWORD = 'not-the-demo-password'

interface TargetStateLite { state: string, ref?: string, adopted?: boolean, outdated?: { version: string }, error?: { code: string, message: string } }
interface ViewLite {
  id: string
  state: string
  retries: number
  bytesFromPeers: number
  bytesFromWebSeeds: number
  bytesThisRun: number
  reason?: string
  error?: { code: string, message: string }
  targets: Record<string, TargetStateLite>
}
interface StatusLite { targets: Array<{ name: string, type: string, endpoint?: string, credentials?: string, lastImageId?: string, lastError?: { code: string }, recoverError?: { code: string } }> }

const viewOf = async (a: AgentProc, id: string): Promise<ViewLite | undefined> =>
  (await a.get<{ images: ViewLite[] }>('/v1/images')).images.find((i) => i.id === id)

/** The image's record once it is in `state`. */
const viewIn = async (a: AgentProc, id: string, state: string, what: string): Promise<ViewLite> =>
  await waitFor(what, async () => {
    const x = await viewOf(a, id)
    return x?.state === state ? x : undefined
  }, 60_000)


async function main (): Promise<void> {
  t.setTimeout(280_000)
  const os: OpenStack = await startOpenStack()
  t.teardown(async () => { await os.stop() })
  t.comment(`keystone ready in ${os.startSeconds.keystone.toFixed(1)}s, glance in ${os.startSeconds.glance.toFixed(1)}s`)
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-glance-agent-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

  // The agents find clouds.yaml the way the openstack CLI does: OS_CLIENT_CONFIG_FILE, inherited
  // by every spawned agent. Other OS_* of the calling shell must not leak into them.
  const cloudsFile = join(dir, 'clouds.yaml')
  await writeFile(cloudsFile, [
    'clouds:',
    '  e2e-appcred:',
    '    auth_type: v3applicationcredential',
    '    region_name: RegionOne',
    '    interface: public',
    '    auth:',
    `      auth_url: ${os.keystoneUrl}`,
    `      application_credential_id: ${os.appCred.id}`,
    `      application_credential_secret: ${os.appCred.secret}`,
    '  e2e-wrong-password:',
    '    region_name: RegionOne',
    '    auth:',
    `      auth_url: ${os.keystoneUrl}`,
    `      username: ${os.demo.username}`,
    `      password: ${WRONG_PASSWORD}`,
    `      project_name: ${os.demo.project}`,
    '      user_domain_name: Default',
    '      project_domain_name: Default',
    ''
  ].join('\n'), { mode: 0o600 })
  const savedEnv = { ...process.env }
  for (const k of Object.keys(process.env)) if (k.startsWith('OS_')) Reflect.deleteProperty(process.env, k)
  process.env.OS_CLIENT_CONFIG_FILE = cloudsFile
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (k.startsWith('OS_')) Reflect.deleteProperty(process.env, k)
    Object.assign(process.env, Object.fromEntries(Object.entries(savedEnv).filter(([k]) => k.startsWith('OS_'))))
  })

  const fx: Fixture = await makeFixture(join(dir, 'fx'))
  const origin = await startOrigin(fx)
  t.teardown(origin.close)
  const entry: ImageEntry = await fx.addImage('alma-9', 3 * 1024 * 1024 + 4099, { pieceLength: 64 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, [entry.id])
  t.teardown(seeder.close)

  const { startAgent } = agentFleet(t)
  /** `settings`: the target's own settings (name template, properties, tags, visibility) over the defaults here */
  const configWith = (cloud: string, settings: Record<string, unknown> = {}): Record<string, unknown> => ({
    subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }],
    policy: { approval: 'auto', retire: 'deactivate', retireGrace: '0' },
    targets: [{ name: TARGET, type: 'glance', cloud, visibility: 'community', tags: ['imgdist', 'e2e'], retryBaseMs: 200, retryMaxMs: 1000, maxAttempts: 3, ...settings }]
  })
  const agentWith = async (site: string, cloud: string, settings: Record<string, unknown> = {}): Promise<AgentProc> =>
    await startAgent(join(dir, site), site, configWith(cloud, settings))
  /** `systemctl reload`: the config file rewritten, then SIGHUP; resolves once the agent logged the reload */
  const reloadWith = async (a: AgentProc, settings: Record<string, unknown>): Promise<string> => {
    await writeAgentConfig(a.dir, a.site, configWith('e2e-appcred', settings))
    const seen = a.logs.length
    a.proc.kill('SIGHUP')
    return await waitFor('the reload logged', async () => a.logs.slice(seen).find((l) => l.includes('config reloaded')), 10_000)
  }
  // hidden ones too (Glance lists them only when asked, and then only those): a duplicate left hidden counts
  const glanceImagesOf = async (id: string): Promise<any[]> => {
    const q = `/v2/images?imgdist_id=${id}&imgdist_catalogue=${fx.index.signed.name}`
    return [...(await os.glanceGet(q)).body.images as any[], ...(await os.glanceGet(`${q}&os_hidden=true`)).body.images as any[]]
  }

  let imageId = ''
  let siteA: AgentProc | undefined

  await t.test('an approved image ends active in Glance, verified by Glance\'s own sha512', async (t) => {
    const a = await agentWith('site-a', 'e2e-appcred')
    siteA = a
    const v = await waitFor('site-a registered in Glance', async () => {
      const x = await viewOf(a, entry.id)
      return x?.state === 'registered' && x.targets[TARGET]?.state === 'registered' ? x : undefined
    }, 120_000)
    imageId = v.targets[TARGET]?.ref ?? ''
    t.match(imageId, /^[0-9a-f-]{36}$/, `the status API names the Glance image id (${imageId})`)
    t.equal(v.targets[TARGET]?.adopted, false, 'uploaded, not adopted')

    const { status, body: g } = await os.glanceGet(`/v2/images/${imageId}`)
    t.equal(status, 200)
    t.equal(g.status, 'active')
    t.equal(g.size, entry.size)
    t.equal(g.os_hash_algo, 'sha512')
    t.equal(g.os_hash_value, entry.sha512, 'os_hash_value (computed by Glance) equals the catalogue sha512')
    t.equal(g.visibility, 'community', 'the configured visibility')
    t.equal(g.os_hidden, false, 'listed: un-hidden once verified')
    t.equal(g.owner, os.demo.projectId, 'in the application credential\'s project')
    t.equal(g.name, `${entry.name}-${entry.version}`)
    t.match(g, {
      imgdist_catalogue: fx.index.signed.name, imgdist_id: entry.id, imgdist_version: entry.version,
      imgdist_sha512: entry.sha512, imgdist_endorsers: keyIdOf((fx.indexKeys[0] as { publicKey: Uint8Array }).publicKey),
      imgdist_site: 'site-a', os_distro: 'test', architecture: 'x86_64'
    })
    t.same([...g.tags].sort(), ['e2e', 'imgdist'])

    const st = await a.get<StatusLite>('/v1/status')
    t.match(st.targets, [{ name: TARGET, type: 'glance', endpoint: os.glanceUrl, lastImageId: imageId }], 'status shows the target')
    t.match(st.targets[0]?.credentials, /clouds\.yaml/, 'and where its credentials came from')
    const everything = JSON.stringify(st) + JSON.stringify(await a.get('/v1/images'))
    t.notOk(everything.includes(os.appCred.secret), 'the application credential secret is not in the API')

    const human = await a.cli('images')
    t.match(human, /TARGETS/)
    t.match(human, new RegExp(`alma-9\\s.*registered.*${TARGET} registered ${imageId}`), `imgdist-agent images shows the Glance id:\n${human}`)
    const json = JSON.parse(await a.cli('images', '--json')) as { images: ViewLite[] }
    t.equal(json.images[0]?.targets[TARGET]?.ref, imageId)
    const statusOut = await a.cli('status')
    t.match(statusOut, new RegExp(`${TARGET}\\s+glance\\s+${os.glanceUrl.replace(/[.]/g, '\\.')}`), `imgdist-agent status lists the target:\n${statusOut}`)
  })

  await t.test('a second agent (fresh state) adopts the image instead of uploading it', async (t) => {
    const b = await agentWith('site-b', 'e2e-appcred')
    const v = await viewIn(b, entry.id, 'registered', 'site-b registered')
    t.equal(v.targets[TARGET]?.ref, imageId, 'the same Glance image')
    t.equal(v.targets[TARGET]?.adopted, true, 'adopted')
    t.equal(v.bytesFromPeers + v.bytesFromWebSeeds, 0, 'no image bytes moved')
    t.ok(b.logs.some((l) => l.includes('adopted existing image')), 'the log says it adopted')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'exactly one Glance image')
    t.equal(await b.stop('SIGTERM'), 0, 'site-b stops cleanly')
  })

  await t.test('a wrong password: a clear AUTH_FAILED in the status API, and the agent keeps running', async (t) => {
    const c = await agentWith('site-c', 'e2e-wrong-password')
    const v = await waitFor('site-c AUTH_FAILED', async () => {
      const x = await viewOf(c, entry.id)
      return x?.state === 'failed' && x.error?.code === 'AUTH_FAILED' && x.retries >= 2 ? x : undefined
    }, 60_000)
    t.equal(v.targets[TARGET]?.state, 'failed')
    t.equal(v.targets[TARGET]?.error?.code, 'AUTH_FAILED', 'the target\'s own line carries the Glance error')
    t.ok(v.retries >= 2, `retried with backoff (${v.retries} attempts), still failing the same clear way`)
    const st = await c.get<StatusLite>('/v1/status')
    t.equal(st.targets[0]?.lastError?.code, 'AUTH_FAILED', 'status: the target\'s last error')
    t.equal(st.targets[0]?.recoverError?.code, 'AUTH_FAILED', 'the start-up clean-up failed too, without stopping the agent')
    t.equal(c.proc.exitCode, null, 'the process is alive (no crash loop)')
    t.equal(c.proc.signalCode, null)
    const health = await fetch(`${c.api}/healthz`)
    t.equal(health.status, 200, '/healthz answers')
    t.match(await c.cli('images'), /AUTH_FAILED/, 'imgdist-agent images shows it')
    const everything = JSON.stringify(st) + JSON.stringify(await c.get('/v1/images')) + c.logs.join('\n')
    t.notOk(everything.includes(WRONG_PASSWORD), 'the password is in neither the API nor the logs')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'Glance untouched')
    t.equal(await c.stop('SIGTERM'), 0, 'site-c stops cleanly')
  })

  await t.test('the same bytes re-signed with other metadata: the Glance image shows the new listing; an operator\'s own property stays', async (t) => {
    const a = siteA
    if (a === undefined || imageId === '') { t.fail('site-a did not register'); return }
    const own = await fetch(`${os.glanceUrl}/v2/images/${imageId}`, {
      method: 'PATCH',
      headers: { 'x-auth-token': await os.demoToken(), 'content-type': 'application/openstack-images-v2.1-json-patch' },
      body: JSON.stringify([{ op: 'add', path: '/site_note', value: 'kept' }])
    })
    t.equal(own.status, 200, 'an operator adds a property of their own')
    const showing = async (version: string): Promise<any> => await waitFor(`Glance shows ${version}`, async () => {
      const { body } = await os.glanceGet(`/v2/images/${imageId}`)
      return body.imgdist_version === version ? body : undefined
    }, 30_000)
    const v1: ImageEntry = { ...entry, version: `${entry.version}.1`, minRam: 512, properties: { ...entry.properties, hw_disk_bus: 'scsi' } }
    await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, v1)))
    const g1 = await showing(v1.version)
    t.match(g1, { name: `${entry.name}-${v1.version}`, min_ram: 512, hw_disk_bus: 'scsi', site_note: 'kept' }, 'the new listing, beside the operator\'s property')
    t.match(g1, { id: imageId, status: 'active', os_hash_value: entry.sha512 }, 'the same image: no bytes moved')
    // listed once more with the first listing's properties: what v1 added goes
    const v2: ImageEntry = { ...entry, version: `${entry.version}.2` }
    await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, v2)))
    const g2 = await showing(v2.version)
    t.notOk('hw_disk_bus' in g2, 'a property the listing dropped is removed')
    t.match(g2, { min_ram: entry.minRam, site_note: 'kept', name: `${entry.name}-${v2.version}` })
    const v = await waitFor('site-a\'s line up to date', async () => {
      const x = await viewOf(a, entry.id)
      return x?.targets[TARGET]?.outdated === undefined ? x : undefined
    }, 10_000)
    t.match(v.targets[TARGET], { state: 'registered', ref: imageId })
    t.notOk(v.targets[TARGET]?.error)
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'still exactly one Glance image')
  })

  await t.test('the target\'s own settings changed: after a restart, and after a reload (SIGHUP), the image shows them, and loses what the former ones set', async (t) => {
    if (siteA === undefined || imageId === '') { t.fail('site-a did not register'); return }
    const tagged = await fetch(`${os.glanceUrl}/v2/images/${imageId}/tags/ops-tag`, { method: 'PUT', headers: { 'x-auth-token': await os.demoToken() } })
    t.equal(tagged.status, 204, 'an operator adds a tag of their own')
    const restart = async (settings: Record<string, unknown>): Promise<AgentProc> => {
      t.equal(await siteA?.stop('SIGTERM'), 0, 'site-a stops')
      siteA = await agentWith('site-a', 'e2e-appcred', settings)
      return siteA
    }
    const glanceWhen = async (what: string, ok: (g: any) => boolean): Promise<any> => await waitFor(what, async () => {
      const { body } = await os.glanceGet(`/v2/images/${imageId}`)
      return ok(body) ? body : undefined
    }, 30_000)
    const settled = async (a: AgentProc): Promise<ViewLite> => await waitFor('site-a\'s line up to date', async () => {
      const x = await viewOf(a, entry.id)
      return x?.targets[TARGET]?.state === 'registered' && x.targets[TARGET]?.outdated === undefined ? x : undefined
    }, 10_000)

    const a = await restart({ nameTemplate: '{name} {version} (site a)', properties: { hw_qemu_guest_agent: 'yes' }, tags: ['imgdist', 'gpu'], visibility: 'shared' })
    const g1 = await glanceWhen('Glance shows the new settings', (g) => g.hw_qemu_guest_agent === 'yes')
    const version = g1.imgdist_version as string
    t.match(g1, { name: `${entry.name} ${version} (site a)`, visibility: 'shared', site_note: 'kept', status: 'active', os_hash_value: entry.sha512 }, 'name, property and visibility; the operator\'s property stays')
    t.same([...g1.tags].sort(), ['gpu', 'imgdist', 'ops-tag'], 'the configured tags, without the one the config dropped, with the operator\'s')
    t.notOk((await settled(a)).targets[TARGET]?.error)
    t.ok(a.logs.some((l) => l.includes('under the current settings')), 'the log says so')

    // back to the settings it was registered with, by a reload: what the intermediate ones set goes
    const line = await reloadWith(a, {})
    const logged = JSON.parse(line) as { needRestart: string[], targetSettings?: string[] }
    t.same(logged.needRestart, [], 'nothing needs a restart')
    t.same([...logged.targetSettings ?? []].sort(), ['nameTemplate', 'properties', 'tags', 'visibility'].map((f) => `targets.${TARGET}.${f}`), 'the reload names the settings it applied')
    const g2 = await glanceWhen('Glance shows the first settings again', (g) => g.visibility === 'community')
    t.notOk('hw_qemu_guest_agent' in g2, 'a property the config dropped is removed')
    t.match(g2, { name: `${entry.name}-${version}`, site_note: 'kept' })
    t.same([...g2.tags].sort(), ['e2e', 'imgdist', 'ops-tag'])
    t.notOk((await settled(a)).targets[TARGET]?.error)
    t.equal(a.proc.exitCode, null, 'the same agent process throughout')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'still exactly one Glance image')
  })

  await t.test('a revocation retires the image in Glance per policy (deactivate)', async (t) => {
    const a = siteA
    if (a === undefined || imageId === '') { t.fail('site-a did not register'); return }
    // retired while showing a property of its listing: restored under one without it, it goes (below)
    const v3: ImageEntry = { ...entry, version: `${entry.version}.3`, properties: { ...entry.properties, hw_rng_model: 'virtio' } }
    await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, v3)))
    await waitFor('Glance shows the listing with hw_rng_model', async () => (await os.glanceGet(`/v2/images/${imageId}`)).body.hw_rng_model === 'virtio', 30_000)
    await fx.revoke(entry.id, 'e2e: withdrawn by the endorser')
    const v = await viewIn(a, entry.id, 'retired', 'site-a retired')
    t.equal(v.targets[TARGET]?.state, 'retired')
    t.equal(v.targets[TARGET]?.ref, imageId)
    const { body: g } = await os.glanceGet(`/v2/images/${imageId}`)
    t.equal(g.status, 'deactivated', 'deactivated in Glance')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'still exactly one Glance image')
  })

  await t.test('listed again with the same bytes: the deactivated image is restored, not uploaded beside it', async (t) => {
    const a = siteA
    if (a === undefined || imageId === '') { t.fail('site-a did not register'); return }
    // other tags by a reload while the image is retired: the restore drops the ones it was registered with
    await reloadWith(a, { tags: ['imgdist', 'back'] })
    // the same bytes under another version string: the restored image says which listing it is now
    const relisted = { ...entry, version: `${entry.version}-relisted` }
    await fx.publish((idx) => editIndex(idx, new Date(), (s) => upsertImage(s, relisted)))
    const v = await viewIn(a, entry.id, 'registered', 'site-a registered again')
    t.equal(v.targets[TARGET]?.ref, imageId, 'the same Glance image')
    t.equal(v.targets[TARGET]?.adopted, false, 'restored, not adopted')
    t.match(v.reason, /restored/, `the record says so: ${v.reason ?? ''}`)
    const { body: g } = await os.glanceGet(`/v2/images/${imageId}`)
    t.match(g, { status: 'active', os_hidden: false, visibility: 'community' }, 'active and shown again')
    t.match(g, { imgdist_version: relisted.version, name: `${entry.name}-${relisted.version}`, imgdist_sha512: entry.sha512 }, 'under the version that listed it again')
    t.same([...g.tags].sort(), ['back', 'imgdist', 'ops-tag'], 'and the settings now in force: the tag the reload dropped is gone, the operator\'s stays')
    t.notOk('hw_rng_model' in g, 'a property of the listing it was retired with, which this one dropped, is removed')
    t.equal(g.site_note, 'kept', 'the operator\'s property stays')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [imageId], 'still exactly one Glance image')
    t.equal(await a.stop('SIGTERM'), 0, 'site-a stops cleanly (targets closed)')
  })

  await t.test('a Glance target added to a site that had only a directory: after the restart the image is uploaded from the cache', async (t) => {
    // site-a's image out of the way (site-a is stopped): otherwise the new target adopts it
    const del = await fetch(`${os.glanceUrl}/v2/images/${imageId}`, { method: 'DELETE', headers: { 'x-auth-token': await os.demoToken() } })
    t.equal(del.status, 204, 'the earlier Glance image deleted')
    const site = 'site-d'
    const glanceCfg = configWith('e2e-appcred')
    const local = { name: 'local', type: 'directory', path: join(dir, site, 'images') }
    const d = await startAgent(join(dir, site), site, { ...glanceCfg, targets: [local] })
    await viewIn(d, entry.id, 'registered', 'site-d registered in its directory')
    t.equal(await d.stop('SIGTERM'), 0)

    const e = await startAgent(join(dir, site), site, { ...glanceCfg, targets: [local, ...glanceCfg.targets as unknown[]] })
    const v = await waitFor('site-d registered in Glance too', async () => {
      const x = await viewOf(e, entry.id)
      return x?.state === 'registered' && x.targets[TARGET]?.state === 'registered' ? x : undefined
    }, 120_000)
    const id = v.targets[TARGET]?.ref ?? ''
    t.equal(v.targets[TARGET]?.adopted, false, 'uploaded, not adopted')
    t.equal(v.targets.local?.state, 'registered', 'still in the directory')
    t.equal(v.bytesThisRun, 0, 'no image byte fetched by this run')
    t.notOk(e.logs.some((l) => l.includes('"msg":"downloading"')), 'nothing downloaded')
    t.ok(e.logs.some((l) => l.includes('"msg":"registering an image in the targets added to the config since"') && l.includes('"from":"cache"')), 'the log says why, and from where')
    const { body: g } = await os.glanceGet(`/v2/images/${id}`)
    t.match(g, { status: 'active', os_hidden: false, os_hash_value: entry.sha512, size: entry.size, imgdist_site: site }, 'active in Glance, hashed by Glance to the signed sha512')
    t.same((await glanceImagesOf(entry.id)).map((i) => i.id), [id], 'exactly one Glance image')
    t.equal(await e.stop('SIGTERM'), 0)
  })
}

const missing = missingOpenStackPackages()
if (missing.length > 0) {
  t.comment(`SKIPPING the agent + Glance end-to-end test: missing Debian packages: ${missing.join(' ')}`)
  t.comment('install them with: bash test/setup/install-tools.sh')
  t.plan(0, `missing Debian packages ${missing.join(' ')} (run test/setup/install-tools.sh)`)
} else {
  await main()
}
