import t from 'tap'
import { ConfigError } from '../lib/errors.js'
import type { TargetConfig } from '../agent/config-schema.js'
import { reloadTargets } from '../agent/target-reload.js'
import { createDirectoryTarget } from '../agent/targets/directory-target.js'
import { createGlanceTarget, GlanceTargetConfig } from '../agent/targets/glance/glance-target.js'
import { validateConfig } from '../lib/config.js'
import type { Target } from '../agent/targets/target.js'

/**
 * What a SIGHUP does to the targets (agent/target-reload.ts, GlanceTarget.reconfigure): the image
 * settings apply at once, everything else is named as needing a restart, and a bad entry is
 * refused before anything applies. The real agent and Glance: test/glance-agent.test.ts.
 */

const auth = { authUrl: 'http://127.0.0.1:9/v3', username: 'u', password: 'p', projectName: 'p', userDomainName: 'Default', projectDomainName: 'Default' }
const glanceCfg = (name: string, over: Record<string, unknown> = {}): TargetConfig =>
  validateConfig(GlanceTargetConfig, { type: 'glance', name, auth, ...over }, 'test') as TargetConfig
const dirCfg = (path = '/srv/images'): TargetConfig => ({ name: 'dir', type: 'directory', path })

t.test('reloadTargets: what applies at once, what needs a restart, and a refusal applies nothing', async (t) => {
  const started = [dirCfg(), glanceCfg('g1'), glanceCfg('g2')]
  const targets: Target[] = [
    createDirectoryTarget(started[0] as never),
    createGlanceTarget(started[1], { env: {} }),
    createGlanceTarget(started[2], { env: {} })
  ]
  t.teardown(async () => { for (const x of targets) await x.close() })
  const [, g1, g2] = targets as [Target, Target, Target]
  const before = g1.settings

  const none = reloadTargets(targets, started, [dirCfg(), glanceCfg('g1'), glanceCfg('g2')])
  t.same([none.changed, none.restart], [[], []], 'the same entries: nothing')

  t.same(reloadTargets(targets, started, [dirCfg(), glanceCfg('g1')]).restart, ['targets'], 'a target removed')
  t.same(reloadTargets(targets, started, [dirCfg(), glanceCfg('g2'), glanceCfg('g1')]).restart, ['targets'], 'the order changed (the order targets register in)')

  const next = [dirCfg('/srv/other'), glanceCfg('g1', { tags: ['imgdist', 'gpu'], properties: { hw_vif_model: 'virtio' }, region: 'R2' }), glanceCfg('g2', { visibility: 'shared' })]
  const r = reloadTargets(targets, started, next)
  t.same(r.changed, ['targets.g1.tags', 'targets.g1.properties', 'targets.g2.visibility'], 'the image settings')
  t.same(r.restart, ['targets.dir.path', 'targets.g1.region'], 'a directory target\'s path and the connection need a restart')
  t.equal(g1.settings, before, 'nothing applied before apply()')
  r.apply()
  t.same(g1.settings, { nameTemplate: '{name}-{version}', properties: { hw_vif_model: 'virtio' }, tags: ['imgdist', 'gpu'], visibility: 'private' }, 'applied')
  t.match(g2.settings, { visibility: 'shared' })

  const again = reloadTargets(targets, started, next)
  t.same(again.changed, [], 'reloading the same file again changes nothing')
  t.same(again.restart, ['targets.dir.path', 'targets.g1.region'], 'and still names what waits for a restart')
  const back = reloadTargets(targets, started, [dirCfg(), glanceCfg('g1'), glanceCfg('g2')])
  t.same(back.changed, ['targets.g1.tags', 'targets.g1.properties', 'targets.g2.visibility'], 'back to the first file: compared with what runs, not with the start')
  back.apply()
  t.same(g1.settings, before)

  const applied = g2.settings
  let refused: unknown
  try {
    reloadTargets(targets, started, [dirCfg(), glanceCfg('g1', { tags: ['x'] }), { ...glanceCfg('g2'), visibility: 'everyone' } as unknown as TargetConfig])
  } catch (err) { refused = err }
  t.ok(refused instanceof ConfigError, 'a bad entry is refused')
  t.match(refused, { code: 'CONFIG_INVALID', message: /glance target "g2" is invalid: .*visibility/ }, 'naming its target and field')
  t.same([g1.settings, g2.settings], [before, applied], 'and nothing of that reload applied, not even the good entry')
})
