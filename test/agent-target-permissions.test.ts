import { spawnSync } from 'node:child_process'
import { access, chmod, chown, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'

/**
 * A directory target the agent's user may not write (EACCES, the usual mistake outside systemd:
 * the directory made by root, the agent run as its own user). The EROFS case, systemd's
 * ProtectSystem=, is in deploy-systemd-pid1.test.ts. As root the agent runs as `nobody` through
 * setpriv; as anyone else the directory is made read-only for its owner. Either way the agent gets
 * a real EACCES from the kernel.
 */

const NOBODY = 65534
const asRoot = process.getuid?.() === 0
const setpriv = spawnSync('setpriv', ['--version']).status === 0
const skip = asRoot && !setpriv ? 'setpriv (util-linux) is missing: cannot run the agent as another user than root' : false
// loud, so that a machine without setpriv does not pass this in silence
if (skip !== false) t.comment(`SKIPPED: ${skip}`)

type Status = { targets: Array<{ name: string, recoverError?: { code: string, message: string }, lastError?: { code: string }, lastOkAt?: string }> }
type View = { id: string, state: string, retries: number, size: number, bytesFromPeers: number, bytesFromWebSeeds: number, error?: { code: string, message: string } }

t.test('a target the agent may not write: TARGET_UNWRITABLE at start-up and registration, then registered once fixed', { skip }, async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-perm-')
  await fx.addImage('perm-one', 512 * 1024 + 3, { pieceLength: 64 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, ['perm-one'])
  t.teardown(seeder.close)
  const site = join(dir, 'site')
  const images = join(site, 'images')
  await mkdir(images, { recursive: true, mode: 0o755 })
  if (asRoot) {
    // nobody reads the catalogue root and owns its data directory; the target stays root's
    await chmod(dir, 0o755)
    await chmod(join(dir, 'fx'), 0o755)
    await chown(site, NOBODY, NOBODY)
  } else {
    await chmod(images, 0o555)
  }
  // Without tap's NODE_OPTIONS: its processinfo hook would write under the checkout's .tap, which
  // nobody may not, and every sha512 worker would fail (that is how agent/verifier.ts's unhandled
  // rejection was found).
  const wrap = asRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'env', '-u', 'NODE_OPTIONS'] : []
  const { startAgent } = agentFleet(t)
  const a = await startAgent(site, 'site-perm', {
    subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }],
    policy: { approval: 'auto' },
    retry: { initial: '1s', max: '2s' }
  }, undefined, wrap)
  t.teardown(() => { if (!t.passing()) t.comment(`agent exit ${String(a.proc.exitCode)} ${String(a.proc.signalCode)}; its log:\n${a.logs.slice(-40).join('\n')}`) })

  const st = await a.get<Status>('/v1/status')
  t.equal(st.targets[0]?.recoverError?.code, 'TARGET_UNWRITABLE', 'the start-up check names the target unwritable')
  t.match(st.targets[0]?.recoverError?.message, /images.*EACCES.*may not write there.*chown/, 'says why and what to do')
  const failed = await waitFor('the image failing at registration', async () =>
    (await a.get<{ images: View[] }>('/v1/images')).images.find((i) => i.id === 'perm-one' && i.error?.code === 'TARGET_UNWRITABLE'), 60_000)
  t.match(failed.error?.message, /may not write there/, 'the image carries the same error')
  // a retry or two from the cached, verified download before the fix: none of them fetches again
  await waitFor('a second failed registration', async () =>
    (await a.get<{ images: View[] }>('/v1/images')).images.find((i) => i.id === 'perm-one' && i.retries >= 2), 60_000)
  t.equal(a.proc.exitCode, null, 'the agent runs on')

  // the operator's fix, as the error says; the next retry takes it without a restart
  if (asRoot) await chown(images, NOBODY, NOBODY)
  else await chmod(images, 0o755)
  await waitFor('the image registered after the fix', async () =>
    (await a.get<{ images: View[] }>('/v1/images')).images.find((i) => i.id === 'perm-one' && i.state === 'registered'), 60_000)
  const done = (await a.get<{ images: View[] }>('/v1/images')).images.find((i) => i.id === 'perm-one') as View
  // each retry used to add the whole image to these again (the handle's counters run from its start)
  t.equal(done.bytesFromPeers + done.bytesFromWebSeeds, done.size, 'the bytes fetched are counted once, whatever the retries')
  t.ok((await readFile(join(images, 'perm-one.img'))).equals(await readFile(fx.images.get('perm-one') as string)), 'byte for byte')
  await access(join(images, 'perm-one.json'))
  const after = await a.get<Status>('/v1/status')
  t.ok(after.targets[0]?.lastOkAt !== undefined, 'the target reports its last success')
})
