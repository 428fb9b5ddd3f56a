import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor, writeAgentConfig } from './helpers/agent-proc.js'

const exists = async (p: string): Promise<boolean> => await access(p).then(() => true, () => false)

t.test('policy: deny rule, manual approval through the CLI, revocation retires per policy', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-policy-')
  await fx.addImage('deny-me', 256 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  const wanted = await fx.addImage('manual-one', 512 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, ['deny-me', 'manual-one'])
  t.teardown(seeder.close)
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(dir, 'site'), 'site-p', {
    subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }],
    policy: { deny: [{ id: 'deny-*' }], approval: 'manual', retire: 'deactivate' }
  })
  const cli = a.cli

  const denied = await waitFor('deny rule applied', async () => (await imagesOf(a)).find((i) => i.id === 'deny-me' && i.state === 'rejected'))
  t.match(denied.reason, /denied by rule/)
  await waitFor('manual approval pending', async () => (await imagesOf(a)).find((i) => i.id === 'manual-one' && i.state === 'awaiting-approval'))
  const table = await cli('images')
  t.match(table, /manual-one\s+1\.0\s+awaiting-approval/, 'the images table shows the waiting image')
  t.match(table, /awaiting-approval .*policy\.approval is manual; to fetch it: imgdist-agent approve manual-one$/m, 'and the command that lets it go')

  t.match(await cli('approve', 'manual-one'), /approved manual-one/)
  // an approval is not a way round a deny rule, and says so instead of "approved"
  await t.rejects(cli('approve', 'deny-me'), /POLICY_REJECTED: deny-me is rejected by this site's policy \(denied by rule \{id=deny-\*\}\).*change policy in the config/)
  t.equal((await imagesOf(a)).find((i) => i.id === 'deny-me')?.state, 'rejected', 'still rejected')
  await waitFor('approved image registered', async () => (await imagesOf(a)).find((i) => i.id === 'manual-one' && i.state === 'registered'), 60_000)
  t.match(await cli('approve', 'manual-one'), /manual-one needs no approval \(it is registered\); nothing to do/, 'approving again is harmless and says so')
  await t.rejects(cli('retry', 'manual-one'), /NOT_FAILED: manual-one has not failed \(it is registered\); nothing to retry/)
  t.ok(await exists(join(a.dir, 'images', 'manual-one.img')))
  t.notOk(await exists(join(a.dir, 'images', 'deny-me.img')), 'the denied image was never fetched')

  const status = JSON.parse(await cli('status', '--json')) as { site: string, images: Record<string, number> }
  t.equal(status.site, 'site-p')
  t.equal(status.images.registered, 1)
  t.equal(await cli('pause'), 'paused\n')
  const { pausedAt } = JSON.parse(await cli('status', '--json')) as { paused: boolean, pausedAt?: string }
  t.ok(pausedAt !== undefined, 'status says since when')
  // a second pause must not look like a first one: the operator would think downloads just stopped
  t.equal(await cli('pause'), `already paused since ${pausedAt ?? ''}; nothing changed ("imgdist-agent resume" downloads again)\n`)
  t.same(JSON.parse(await cli('pause', '--json')), { paused: true, changed: false, pausedAt }, 'the API says nothing changed')
  t.equal((JSON.parse(await cli('status', '--json')) as { paused: boolean }).paused, true)
  t.equal(await cli('resume'), 'resumed\n')
  t.equal(await cli('resume'), 'not paused; nothing to resume\n')
  t.same(JSON.parse(await cli('resume', '--json')), { paused: false, changed: false })
  await t.rejects(cli('approve', 'no-such-image'), /no image "no-such-image"/)

  await fx.revoke(wanted.id, 'CVE-2099-0001')
  const retired = await waitFor('revoked image retired', async () => (await imagesOf(a)).find((i) => i.id === 'manual-one' && i.state === 'retired'), 30_000)
  t.match(retired.reason, /revoked: CVE-2099-0001/)
  t.notOk(await exists(join(a.dir, 'images', 'manual-one.img')), 'the image is no longer visible')
  t.ok(await exists(join(a.dir, 'images', 'manual-one.img.retired')), 'deactivate keeps it aside')
  const views = await a.get<{ images: Array<{ id: string, targets: Record<string, { state: string, ref?: string }> }> }>('/v1/images')
  t.match(views.images.find((i) => i.id === 'manual-one')?.targets.dir, { state: 'retired', ref: /manual-one\.img\.retired$/ }, 'the target names where the image went')
  const side = JSON.parse(await readFile(join(a.dir, 'images', 'manual-one.json'), 'utf8')) as { retired?: { action: string } }
  t.equal(side.retired?.action, 'deactivate')
  t.equal(retired.seeding, false, 'a revoked image is not seeded')

  // SIGHUP: a new policy applies without a restart; a broken config is refused and the old one kept.
  await writeFile(a.configPath, 'site: [broken')
  a.proc.kill('SIGHUP')
  await waitFor('bad reload refused', async () => a.logs.some((l) => l.includes('config reload refused')), 10_000)
  type Reload = { at: string, needRestart: string[], error?: { code: string, message: string } }
  const reloadOf = async (): Promise<Reload | undefined> => (await a.get<{ reload?: Reload }>('/v1/status')).reload
  t.match(await reloadOf(), { needRestart: [], error: { code: 'CONFIG_INVALID' } }, 'the status says the reload was refused, and why')
  t.match(await a.cli('status'), /config: reload REFUSED at \S+ \(CONFIG_INVALID: .*\); the running config is kept/)
  await writeAgentConfig(a.dir, 'site-p', {
    subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }],
    policy: { deny: [], approval: 'auto', retire: 'deactivate' },
    swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false, maxConns: 40 }
  })
  a.proc.kill('SIGHUP')
  await waitFor('formerly denied image registered after reload', async () => (await imagesOf(a)).find((i) => i.id === 'deny-me' && i.state === 'registered'), 30_000)
  const took = await reloadOf()
  t.same(took?.needRestart, ['swarm'], 'the next one took, and names what waits for a restart')
  t.notOk(took?.error)
  t.match(await a.cli('status'), /config: reloaded at \S+; a restart is needed for: swarm\n/)
  t.equal(await a.stop('SIGTERM'), 0, 'SIGTERM exits 0')
})
