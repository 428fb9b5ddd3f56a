import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { stringify } from 'yaml'
import { makeBenchImage } from '../bench/fixture.js'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { waitFor } from './helpers/agent-proc.js'
import { freePort } from './helpers/free-port.js'
import { missingOpenStackPackages, startOpenStack } from './helpers/glance-openstack.js'
import { bootSystemd, systemdContainerMissing, type SystemdContainer } from './helpers/systemd-container.js'

// The units in deploy/, started by a real systemd as PID 1 (test/helpers/systemd-container.ts),
// through the steps docs/index-server.md and docs/agent.md give an operator: `imgdist-index
// init` as root, `systemctl enable --now`, publish, `imgdist-index import` as root and
// `systemctl reload`; the agent's system user, its config under /etc/imgdist, `systemctl enable
// --now`. Then what only a real systemd shows: the services run as their users with the unit's
// sandbox in force (seccomp, no new privileges), the state directories are made and usable, an
// image goes from the index server's seed to the agent's target, `systemctl reload` keeps the
// processes, a killed service is restarted on its state (Restart=on-failure), and `systemctl stop`
// ends both with status 0, not a timeout or a kill. A directory target outside the state
// directory (ReadWritePaths=) and a Glance target with LoadCredential= have subtests of their own.
// deploy-systemd.test.ts checks the same units statically and the system calls under strace.

const missing = systemdContainerMissing()
if (missing !== false) t.comment(`SKIPPING the units under a real systemd: ${missing} (CI runs as root with test/setup/install-tools.sh)`)

const REPO = resolve('.')
/** where the container sees the repository and node (read-only binds): not under /root or /home, which ProtectHome= hides */
const APP = '/opt/imgdist'
const NODE = '/opt/imgdist-node'

/** The shipped unit, with the packaged program replaced by the built one. */
async function unitText (name: string): Promise<string> {
  const text = await readFile(join(REPO, 'deploy', `${name}.service`), 'utf8')
  const out = text.replace(`ExecStart=/usr/bin/${name} `, `ExecStart=${NODE} ${APP}/dist/bin/${name}.js `)
  if (out === text) throw new Error(`deploy/${name}.service: no ExecStart=/usr/bin/${name} to replace`)
  return out
}

type TestLike = { teardown: (fn: () => unknown) => void, passing: () => boolean, comment: (msg: string) => void }

/**
 * The container, with the checkout and node bound in and the `imgdist` system user made (docs/agent.md,
 * install step 1). Stopped at teardown; if the test failed, the units' journals and systemd's log are printed first.
 */
async function boot (t: TestLike, units: string[]): Promise<SystemdContainer> {
  const ct = await bootSystemd([[REPO, APP], [process.execPath, NODE]])
  t.teardown(ct.stop)
  t.teardown(async () => {
    if (t.passing()) return
    for (const u of units) t.comment(`journal of ${u}:\n${ct.journal(u)}`)
    t.comment(`systemd's log:\n${await ct.log()}`)
  })
  ct.sh(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'imgdist'], 'useradd imgdist')
  return ct
}

/** For the agent-only subtests: a signed catalogue with one image seeded from the host, and the container booted. */
async function agentBed (t: TestLike, prefix: string, id: string, size: number) {
  const { fx, origin } = await originTestbed(t, prefix)
  const entry = await fx.addImage(id, size, { pieceLength: 64 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, [entry.id])
  t.teardown(seeder.close)
  const apiPort = await freePort()
  const ct = await boot(t, ['imgdist-agent'])
  return { fx, origin, entry, apiPort, ct }
}

/** A process's /proc/<pid>/status fields, read from the host through the container's /proc. */
async function procStatus (ct: SystemdContainer, pid: number): Promise<Record<string, string>> {
  const text = await readFile(join(ct.root, 'proc', String(pid), 'status'), 'utf8')
  return Object.fromEntries(text.split('\n').map((l) => l.split(/:\s*/, 2)).filter((kv) => kv.length === 2))
}

t.test('both units under systemd as PID 1: run sandboxed, move an image, reload, come back from a crash, stop cleanly', { skip: missing }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-pid1-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const [indexPort, indexTorrentPort, apiPort, agentTorrentPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const indexUrl = `http://127.0.0.1:${indexPort}`
  const image = await makeBenchImage({ dir: join(dir, 'catalogue'), id: 'alpine-3.20', size: 3 * 1024 * 1024, pieceLength: 64 * 1024, announce: [`${indexUrl}/announce`] })

  const ct = await boot(t, ['imgdist-index', 'imgdist-agent'])
  const { sh, show, journal } = ct
  const put = ct.write

  // ---- the index server, as docs/index-server.md installs it
  await put('/etc/imgdist/root.yaml', await readFile(image.rootPath))
  sh([NODE, `${APP}/dist/bin/imgdist-index.js`, 'init', '--data-dir', '/var/lib/imgdist-index', '--root', '/etc/imgdist/root.yaml'], 'imgdist-index init')
  await put('/etc/imgdist/index.yaml', stringify({
    listen: `127.0.0.1:${indexPort}`, publicUrl: indexUrl, logLevel: 'info',
    seeding: { enabled: true, dht: false, torrentPort: indexTorrentPort, rescanInterval: '1m' },
    torrents: { injectTracker: true, injectWebSeed: true }
  }))
  await put('/etc/systemd/system/imgdist-index.service', await unitText('imgdist-index'))
  sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  sh(['systemctl', 'enable', '--now', 'imgdist-index'], 'systemctl enable --now imgdist-index')
  const get = async (path: string, init: Parameters<typeof request>[1] = {}): Promise<{ status: number, text: string }> => {
    const r = await request(`${indexUrl}${path}`, init)
    return { status: r.statusCode, text: await r.body.text() }
  }
  await waitFor('the index server answering', async () => (await get('/healthz').catch(() => undefined))?.status === 200 ? true : undefined, 30_000)
  const published = await get('/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: await readFile(image.indexPath) })
  t.equal(published.status, 200, `the signed index is published (${published.text.slice(0, 100)})`)
  await put('/srv/incoming/alpine.img', await readFile(image.path))
  await put('/srv/incoming/alpine.torrent', await readFile(image.torrentPath))
  sh([NODE, `${APP}/dist/bin/imgdist-index.js`, 'import', '--data-dir', '/var/lib/imgdist-index', '--id', image.id,
    '--torrent', '/srv/incoming/alpine.torrent', '/srv/incoming/alpine.img'], 'imgdist-index import (as root, while the service runs)')
  const indexPid = Number(show('imgdist-index', 'MainPID'))
  sh(['systemctl', 'reload', 'imgdist-index'], 'systemctl reload imgdist-index')
  await waitFor('the imported image seeded', async () => /^imgdist_index_torrents_seeded\s+1\b/m.test((await get('/metrics')).text) ? true : undefined, 60_000)
  t.equal(Number(show('imgdist-index', 'MainPID')), indexPid, 'reload (SIGHUP) kept the index server\'s process')
  t.match(journal('imgdist-index'), /SIGHUP: rescanning/, 'and it rescanned')

  // ---- the agent, as docs/agent.md installs it (its user made by boot())
  await put('/etc/imgdist/roots/bench-root.yaml', await readFile(image.rootPath))
  await put('/etc/imgdist/agent.yaml', stringify({
    site: 'pid1-site', dataDir: '/var/lib/imgdist', api: { listen: `127.0.0.1:${apiPort}` },
    swarm: { torrentPort: agentTorrentPort, dht: { enabled: false }, lsd: false },
    subscriptions: [{ url: `${indexUrl}/v1/index.yaml`, root: '/etc/imgdist/roots/bench-root.yaml', pollInterval: '2s' }],
    policy: { approval: 'auto' },
    targets: [{ name: 'local', type: 'directory', path: '/var/lib/imgdist/images' }]
  }))
  await put('/etc/systemd/system/imgdist-agent.service', await unitText('imgdist-agent'))
  sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  sh(['systemctl', 'enable', '--now', 'imgdist-agent'], 'systemctl enable --now imgdist-agent')
  const sidecar = join(ct.root, 'var/lib/imgdist/images', `${image.id}.json`)
  await waitFor('the agent registered the image', async () => await stat(sidecar).then(() => true, () => undefined), 120_000)
  const placed = await readFile(join(ct.root, 'var/lib/imgdist/images', `${image.id}.img`))
  t.ok(placed.equals(await readFile(image.path)), 'the agent\'s target holds the image, byte for byte')
  t.equal(JSON.parse(await readFile(sidecar, 'utf8')).sha512, image.sha512, 'with the signed sha512 in its sidecar')
  const cli = sh([NODE, `${APP}/dist/bin/imgdist-agent.js`, 'images', '--api', `http://127.0.0.1:${apiPort}`], 'imgdist-agent images')
  t.match(cli, new RegExp(`${image.id}.*registered`), '`imgdist-agent images` shows it registered')

  // ---- the sandbox as systemd applied it
  const agentPid = Number(show('imgdist-agent', 'MainPID'))
  const agentStatus = await procStatus(ct, agentPid)
  const imgdistUid = sh(['id', '-u', 'imgdist'], 'id -u imgdist')
  t.equal(agentStatus.Uid?.split(/\s+/)[0], imgdistUid, 'the agent runs as the imgdist user')
  t.equal(agentStatus.NoNewPrivs, '1', 'with no new privileges')
  t.equal(agentStatus.Seccomp, '2', 'under its system call filter')
  t.equal(agentStatus.CapEff, '0000000000000000', 'with no capabilities')
  const indexStatus = await procStatus(ct, indexPid)
  t.not(indexStatus.Uid?.split(/\s+/)[0], '0', 'the index server runs as its dynamic user, not root')
  t.equal(indexStatus.Seccomp, '2', 'under its system call filter')
  t.equal(sh(['stat', '-c', '%U %a', '/var/lib/imgdist'], 'stat'), 'imgdist 750', 'StateDirectory=imgdist made /var/lib/imgdist, the agent\'s, mode 0750')

  sh(['systemctl', 'reload', 'imgdist-agent'], 'systemctl reload imgdist-agent')
  await waitFor('the agent reloaded its config', async () => /config reloaded/.test(journal('imgdist-agent')) ? true : undefined, 20_000)
  t.equal(Number(show('imgdist-agent', 'MainPID')), agentPid, 'reload (SIGHUP) kept the agent\'s process')

  const ownAddresses = /cannot list this machine's network addresses/
  t.notMatch(journal('imgdist-agent') + journal('imgdist-index'), ownAddresses, 'both could list the machine\'s addresses (AF_NETLINK allowed)')

  // ---- a stricter site: without AF_NETLINK, the index server keeps running (it crashed at its first announce before)
  await put('/etc/systemd/system/imgdist-index.service.d/no-netlink.conf', '[Service]\nRestrictAddressFamilies=\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n')
  sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  sh(['systemctl', 'restart', 'imgdist-index'], 'systemctl restart imgdist-index')
  await waitFor('the seeder\'s announce answered without AF_NETLINK', async () => ownAddresses.test(journal('imgdist-index')) ? true : undefined, 30_000)
  const strictPid = Number(show('imgdist-index', 'MainPID'))
  t.not(strictPid, indexPid, 'restarted with the drop-in')
  t.equal((await get('/healthz')).status, 200, 'and still serving after its announce, with a warning instead of a crash')
  t.equal(Number(show('imgdist-index', 'MainPID')), strictPid, 'the same process')

  // ---- a crash of the index server: Restart=on-failure brings it back, under a dynamic user, on its state
  const servedBefore = (await get('/v1/index.yaml')).text
  sh(['systemctl', 'kill', '--signal=SIGKILL', 'imgdist-index'], 'systemctl kill -s SIGKILL imgdist-index')
  await waitFor('systemd restarting the index server (RestartSec=5s)', async () => {
    const p = Number(show('imgdist-index', 'MainPID'))
    return show('imgdist-index', 'ActiveState') === 'active' && p !== 0 && p !== strictPid ? true : undefined
  }, 30_000)
  t.equal(show('imgdist-index', 'NRestarts'), '1', 'the index server was restarted by Restart=on-failure, once')
  await waitFor('the restarted index server answering', async () => (await get('/healthz').catch(() => undefined))?.status === 200 ? true : undefined, 30_000)
  t.equal((await get('/v1/index.yaml')).text, servedBefore, 'it serves the same signed index from its state directory')
  await waitFor('the image seeded again', async () => /^imgdist_index_torrents_seeded\s+1\b/m.test((await get('/metrics')).text) ? true : undefined, 60_000)
  t.pass('and seeds the image again')

  // ---- stop: SIGTERM drains and exits 0 within TimeoutStopSec
  const restarts: Record<string, string> = { 'imgdist-agent': '0', 'imgdist-index': '1' }
  for (const unit of ['imgdist-agent', 'imgdist-index']) {
    sh(['systemctl', 'stop', unit], `systemctl stop ${unit}`)
    t.equal(show(unit, 'ActiveState'), 'inactive', `${unit} stopped`)
    t.equal(show(unit, 'Result'), 'success', `${unit} ended in success (not timeout, signal or core dump)`)
    t.equal(show(unit, 'ExecMainStatus'), '0', `${unit} exited 0 on SIGTERM`)
    t.equal(show(unit, 'NRestarts'), restarts[unit], `${unit}: NRestarts=${restarts[unit] ?? ''} (only the SIGKILL above made systemd restart anything)`)
  }
  t.notMatch(journal('imgdist-agent') + journal('imgdist-index'), /SIGSYS|Operation not permitted|EPERM/, 'nothing in either journal was refused by the sandbox')
})

t.test('the agent unit: a directory target outside /var/lib/imgdist needs ReadWritePaths=; Restart= brings a killed agent back', { skip: missing }, async (t) => {
  const { fx, origin, entry, apiPort, ct } = await agentBed(t, 'imgdist-pid1-srv-', 'rocky-9', 3 * 1024 * 1024 + 11)
  const { sh, show, journal } = ct
  // docs/agent.md: the operator makes the directory and gives it to the agent's user
  sh(['install', '-d', '-o', 'imgdist', '-g', 'imgdist', '-m', '0755', '/srv/images'], 'install -d /srv/images')
  await ct.write('/etc/imgdist/roots/root.yaml', await readFile(fx.rootPath))
  await ct.write('/etc/imgdist/agent.yaml', stringify({
    site: 'pid1-srv', dataDir: '/var/lib/imgdist', api: { listen: `127.0.0.1:${apiPort}` },
    swarm: { torrentPort: await freePort(), dht: { enabled: false }, lsd: false },
    subscriptions: [{ url: origin.indexUrl, root: '/etc/imgdist/roots/root.yaml', pollInterval: '2s' }],
    policy: { approval: 'auto' },
    retry: { initial: '1s', max: '2s' },
    targets: [{ name: 'srv', type: 'directory', path: '/srv/images' }]
  }))
  await ct.write('/etc/systemd/system/imgdist-agent.service', await unitText('imgdist-agent'))
  sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  sh(['systemctl', 'enable', '--now', 'imgdist-agent'], 'systemctl enable --now imgdist-agent')

  type Status = { targets: Array<{ name: string, recoverError?: { code: string, message: string }, lastError?: { code: string, message: string }, lastOkAt?: string }> }
  type View = { id: string, state: string, error?: { code: string, message: string }, bytesThisRun: number }
  const api = async <T>(path: string): Promise<T> => await (await request(`http://127.0.0.1:${apiPort}${path}`)).body.json() as T
  const image = async (): Promise<View | undefined> => (await api<{ images: View[] }>('/v1/images').catch(() => ({ images: [] }))).images.find((i) => i.id === entry.id)

  // ---- without the drop-in, ProtectSystem=strict makes /srv read-only: a clear error at start-up, the agent runs on
  const st = await waitFor('the agent\'s status API', async () => await api<Status>('/v1/status').catch(() => undefined), 30_000)
  t.equal(st.targets[0]?.recoverError?.code, 'TARGET_UNWRITABLE', 'the start-up check names the target unwritable')
  t.match(st.targets[0]?.recoverError?.message, /\/srv\/images.*read-only.*ReadWritePaths=\/srv\/images/, 'and says which unit setting fixes it')
  t.match(sh([NODE, `${APP}/dist/bin/imgdist-agent.js`, 'status', '--api', `http://127.0.0.1:${apiPort}`], 'imgdist-agent status'),
    /srv\s+directory\s+\/srv\/images.*TARGET_UNWRITABLE/, '`imgdist-agent status` shows it on the target\'s line')
  const failed = await waitFor('the image failing at registration', async () => { const v = await image(); return v?.error?.code === 'TARGET_UNWRITABLE' ? v : undefined }, 60_000)
  t.match(failed.error?.message, /ReadWritePaths=\/srv\/images/, 'the image\'s error carries the same advice')
  t.equal(show('imgdist-agent', 'ActiveState'), 'active', 'the agent keeps running (no restart loop)')
  t.match(journal('imgdist-agent'), /target start-up check failed/, 'and logged the failed check')

  // ---- the drop-in docs/agent.md gives
  await ct.write('/etc/systemd/system/imgdist-agent.service.d/images.conf', '[Service]\nReadWritePaths=/srv/images\n')
  sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  sh(['systemctl', 'restart', 'imgdist-agent'], 'systemctl restart imgdist-agent')
  await waitFor('the image registered in /srv/images', async () => (await image())?.state === 'registered' ? true : undefined, 60_000)
  t.ok((await readFile(join(ct.root, 'srv/images', `${entry.id}.img`))).equals(await readFile(fx.images.get(entry.id) ?? '')), 'with ReadWritePaths= the target holds the image, byte for byte')
  const fixed = await api<Status>('/v1/status')
  t.equal(fixed.targets[0]?.recoverError, undefined, 'and the start-up check passed')

  // ---- a crash: Restart=on-failure brings the agent back with its state; nothing is fetched again
  const pid = Number(show('imgdist-agent', 'MainPID'))
  sh(['systemctl', 'kill', '--signal=SIGKILL', 'imgdist-agent'], 'systemctl kill -s SIGKILL imgdist-agent')
  const newPid = await waitFor('systemd restarting the agent (RestartSec=5)', async () => {
    const p = Number(show('imgdist-agent', 'MainPID'))
    return show('imgdist-agent', 'ActiveState') === 'active' && p !== 0 && p !== pid ? p : undefined
  }, 30_000)
  t.not(newPid, pid, 'a new process')
  t.equal(show('imgdist-agent', 'NRestarts'), '1', 'started by Restart=on-failure, once')
  const back = await waitFor('the restarted agent answering', async () => await image(), 30_000)
  t.equal(back.state, 'registered', 'its LevelDB state survived the kill: the image is still registered')
  t.equal(back.bytesThisRun, 0, 'and not fetched again')
  t.match(journal('imgdist-agent'), /imgdist-agent started[\s\S]*imgdist-agent started[\s\S]*imgdist-agent started/, 'three starts in the journal: first, after the drop-in, after the crash')

  sh(['systemctl', 'stop', 'imgdist-agent'], 'systemctl stop imgdist-agent')
  t.equal(show('imgdist-agent', 'Result'), 'success', 'the restarted agent stops cleanly')
  t.equal(show('imgdist-agent', 'ExecMainStatus'), '0', 'exit status 0')
})

const openstack = missingOpenStackPackages()
const glanceSkip = missing !== false ? missing : openstack.length > 0 ? `${openstack.join(', ')} not installed` : false
if (missing === false && glanceSkip !== false) t.comment(`SKIPPING the agent's Glance target under a real systemd: ${glanceSkip} (test/setup/install-tools.sh installs them)`)

t.test('the agent unit with a Glance target, its clouds.yaml handed over by LoadCredential= (docs/glance.md)', { skip: glanceSkip }, async (t) => {
  t.setTimeout(280_000)
  const os = await startOpenStack()
  t.teardown(async () => { await os.stop() })
  const { fx, origin, entry, apiPort, ct } = await agentBed(t, 'imgdist-pid1-glance-', 'alma-9', 2 * 1024 * 1024 + 77)
  await ct.write('/etc/imgdist/roots/root.yaml', await readFile(fx.rootPath))
  // root-only, as docs/glance.md recommends: only systemd's private copy is readable by the agent
  await ct.write('/etc/imgdist/clouds.yaml', [
    'clouds:', '  site-cloud:', '    auth_type: v3applicationcredential', '    region_name: RegionOne', '    interface: public', '    auth:',
    `      auth_url: ${os.keystoneUrl}`, `      application_credential_id: ${os.appCred.id}`, `      application_credential_secret: ${os.appCred.secret}`, ''
  ].join('\n'), 0o600)
  await ct.write('/etc/imgdist/agent.yaml', stringify({
    site: 'pid1-glance', dataDir: '/var/lib/imgdist', api: { listen: `127.0.0.1:${apiPort}` },
    swarm: { torrentPort: await freePort(), dht: { enabled: false }, lsd: false },
    subscriptions: [{ url: origin.indexUrl, root: '/etc/imgdist/roots/root.yaml', pollInterval: '2s' }],
    policy: { approval: 'auto' },
    targets: [{ name: 'cloud-a', type: 'glance', cloud: 'site-cloud', visibility: 'private', tags: ['imgdist'] }]
  }))
  await ct.write('/etc/systemd/system/imgdist-agent.service', await unitText('imgdist-agent'))
  // the drop-in docs/glance.md gives, as `systemctl edit imgdist-agent` would save it
  await ct.write('/etc/systemd/system/imgdist-agent.service.d/override.conf',
    '[Service]\nLoadCredential=clouds.yaml:/etc/imgdist/clouds.yaml\nEnvironment=OS_CLIENT_CONFIG_FILE=%d/clouds.yaml\n')
  ct.sh(['systemctl', 'daemon-reload'], 'daemon-reload')
  ct.sh(['systemctl', 'enable', '--now', 'imgdist-agent'], 'systemctl enable --now imgdist-agent')

  const api = async <T>(path: string): Promise<T> => await (await request(`http://127.0.0.1:${apiPort}${path}`)).body.json() as T
  type View = { id: string, state: string, targets: Record<string, { state: string, ref?: string }> }
  const v = await waitFor('registered in Glance', async () => {
    const x = (await api<{ images: View[] }>('/v1/images')).images.find((i) => i.id === entry.id)
    return x?.state === 'registered' && x.targets['cloud-a']?.state === 'registered' ? x : undefined
  }, 120_000)
  const { status, body: g } = await os.glanceGet(`/v2/images/${v.targets['cloud-a']?.ref ?? ''}`)
  t.equal(status, 200, 'the agent\'s Glance image exists')
  t.equal(g.status, 'active', 'active')
  t.equal(g.os_hash_value, entry.sha512, 'and Glance\'s own sha512 is the signed one')
  const st = await api<{ targets: Array<{ name: string, credentials?: string }> }>('/v1/status')
  t.match(st.targets[0]?.credentials, /\/run\/credentials\/imgdist-agent\.service\/clouds\.yaml/, 'its credentials came from systemd\'s credentials directory (%d)')
  const direct = ct.exec(['runuser', '-u', 'imgdist', '--', 'cat', '/etc/imgdist/clouds.yaml'])
  t.not(direct.status, 0, 'the imgdist user cannot read /etc/imgdist/clouds.yaml itself: the credential is what worked')
  t.notMatch(ct.journal('imgdist-agent'), new RegExp(os.appCred.secret), 'the secret is not in the journal')

  ct.sh(['systemctl', 'stop', 'imgdist-agent'], 'systemctl stop imgdist-agent')
  t.equal(ct.show('imgdist-agent', 'Result'), 'success', 'stopped cleanly')
  t.equal(ct.show('imgdist-agent', 'ExecMainStatus'), '0', 'exit status 0')
})
