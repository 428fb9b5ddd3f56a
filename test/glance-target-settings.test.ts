import t from 'tap'
import type { GlanceImage } from '../agent/targets/glance/image-properties.js'
import { formerSettings, glanceSettings, settingsOps, type GlanceSettings } from '../agent/targets/glance/target-settings.js'

/**
 * The tag and visibility part of a Glance refresh (target-settings.ts). Against the real Glance:
 * test/glance-agent.test.ts ("the target's own settings changed").
 */

const cfg = (over: Partial<GlanceSettings> = {}): GlanceSettings => ({ nameTemplate: '{name}-{version}', properties: {}, tags: ['imgdist'], visibility: 'private', ...over })
const image = (over: Partial<GlanceImage> = {}): GlanceImage => ({ id: 'i', status: 'active', visibility: 'private', tags: ['imgdist', 'ops'], ...over })

t.test('glanceSettings: what a registered line records, and formerSettings reads it back', async (t) => {
  const s = glanceSettings({ ...cfg({ properties: { a: '1' }, tags: ['x'] }), name: 'g', cloud: 'c' } as unknown as GlanceSettings)
  t.same(s, { nameTemplate: '{name}-{version}', properties: { a: '1' }, tags: ['x'], visibility: 'private' }, 'only the settings that end up on an image')
  t.same(formerSettings(s), { propertyKeys: ['a'], tags: ['x'], visibility: 'private' })
  t.equal(formerSettings(undefined), undefined)
  t.same(formerSettings({ properties: ['a'], tags: 'x', visibility: 3 }), { propertyKeys: [], tags: [] }, 'a record of another shape reads as nothing known')
})

t.test('settingsOps: tags and visibility change only where the settings did', async (t) => {
  const same = formerSettings(cfg())
  t.same(settingsOps(image({ tags: ['ops'] }), cfg(), same), [], 'settings unchanged: a tag the operator removed stays removed')
  t.same(settingsOps(image({ visibility: 'shared' }), cfg(), same), [], 'settings unchanged: the operator\'s visibility stays')

  t.same(settingsOps(image(), cfg({ tags: ['imgdist', 'gpu'] }), same), [{ op: 'replace', path: '/tags', value: ['imgdist', 'ops', 'gpu'] }], 'a tag added to the config is added')
  t.same(settingsOps(image({ tags: ['imgdist', 'ops', 'gpu'] }), cfg({ tags: ['site'] }), formerSettings(cfg({ tags: ['imgdist', 'gpu'] }))),
    [{ op: 'replace', path: '/tags', value: ['ops', 'site'] }], 'tags the former settings set and the current do not go; the operator\'s stay')
  t.same(settingsOps(image({ tags: ['ops', 'site'] }), cfg({ tags: ['site'] }), formerSettings(cfg({ tags: ['imgdist'] }))), [], 'nothing to do when the image already shows them')

  t.same(settingsOps(image(), cfg({ visibility: 'community' }), same), [{ op: 'replace', path: '/visibility', value: 'community' }], 'the configured visibility changed')
  t.same(settingsOps(image({ visibility: 'community' }), cfg({ visibility: 'community' }), same), [], 'already so')

  t.same(settingsOps(image({ tags: ['ops'] }), cfg(), undefined), [{ op: 'replace', path: '/tags', value: ['ops', 'imgdist'] }], 'former settings unknown: the configured tags are added')
  t.same(settingsOps(image({ visibility: 'shared' }), cfg(), undefined), [], 'former settings unknown: the visibility is left')
  t.same(settingsOps(image({ tags: undefined }), cfg({ tags: ['a'] }), same), [{ op: 'replace', path: '/tags', value: ['a'] }], 'an image without tags')
})
