import { changedFields } from '../../../lib/changed-fields.js'
import { validateConfig } from '../../../lib/config.js'
import type { TargetImage, TargetSettings } from '../target.js'
import { GlanceTargetConfig } from './config-schema.js'
import type { GlanceImage, PatchOp } from './image-properties.js'

/**
 * What a Glance target's own config writes on every image it registers (Target.settings): the
 * agent records them on each registered line, and after a reload or restart with other settings it has
 * the target bring the images it registered up to date (Target.refresh with `formerSettings`).
 */

export type GlanceSettings = Pick<GlanceTargetConfig, 'nameTemplate' | 'properties' | 'tags' | 'visibility'>

/** The target's entry validated, with its defaults; a ConfigError names every bad field. */
export function validGlanceConfig (config: unknown): GlanceTargetConfig {
  const name = (config as { name?: unknown } | null)?.name
  return validateConfig(GlanceTargetConfig, config, `glance target${typeof name === 'string' ? ` "${name}"` : ''}`)
}

/**
 * What a reload (SIGHUP) applies at once: what the target writes on images (the settings, which
 * the listing refresh then brings to the images registered before) and what each registration
 * reads when it begins. Credentials, endpoint, TLS and the request limits are read at start.
 */
const LIVE_FIELDS: ReadonlySet<string> = new Set(['nameTemplate', 'properties', 'tags', 'visibility', 'adoptExisting', 'maxUploadBytesPerSecond'])

/**
 * A reloaded entry against the running config: the fields that differ and apply at once, those
 * that need a restart, and the config to run with (the running one with the live fields replaced).
 */
export function reloadedConfig (running: GlanceTargetConfig, config: unknown): { changed: string[], restart: string[], cfg: GlanceTargetConfig } {
  const next = validGlanceConfig(config)
  const fields = changedFields(running, next)
  const changed = fields.filter((k) => LIVE_FIELDS.has(k))
  const cfg = { ...running }
  for (const k of changed) Object.assign(cfg, { [k]: next[k as keyof GlanceTargetConfig] })
  return { changed, restart: fields.filter((k) => !LIVE_FIELDS.has(k)), cfg }
}

export function glanceSettings (cfg: GlanceSettings): GlanceSettings {
  return { nameTemplate: cfg.nameTemplate, properties: { ...cfg.properties }, tags: [...cfg.tags], visibility: cfg.visibility }
}

/** What is known of the settings an image was registered under (from the agent's own state, read defensively). */
export interface FormerSettings { propertyKeys: string[], tags: string[], visibility?: string }

export function formerSettings (s: TargetSettings | undefined): FormerSettings | undefined {
  if (s === undefined) return undefined
  const props = s.properties
  const tags = s.tags
  return {
    propertyKeys: typeof props === 'object' && props !== null && !Array.isArray(props) ? Object.keys(props) : [],
    tags: Array.isArray(tags) ? tags.filter((x): x is string => typeof x === 'string') : [],
    ...(typeof s.visibility === 'string' ? { visibility: s.visibility } : {})
  }
}

/**
 * What an image showed before, for a refresh or a restore to remove what the current listing and
 * settings no longer set: its former settings, and the property keys of its former listing
 * (`formerProperties`) and of those settings.
 */
export function formerOf (img: Pick<TargetImage, 'formerSettings' | 'formerProperties'>): { settings: FormerSettings | undefined, propertyKeys: string[] } {
  const settings = formerSettings(img.formerSettings)
  return { settings, propertyKeys: [...img.formerProperties ?? [], ...settings?.propertyKeys ?? []] }
}

/**
 * The tag and visibility changes of a refresh, taken only where the settings changed: the tags
 * the former settings set and the current ones do not are removed, the current ones added; the
 * visibility follows the config only when the config's changed. Otherwise nothing, so that an
 * operator's own tags and visibility on an image stay, as their properties do (listingOps). With
 * the former settings unknown (a line an earlier agent registered), the current tags are added.
 * Name and properties are listingOps' (it renders the current template and properties).
 */
export function settingsOps (image: GlanceImage, cfg: GlanceSettings, former: FormerSettings | undefined): PatchOp[] {
  const ops: PatchOp[] = []
  const have = Array.isArray(image.tags) ? image.tags.filter((x): x is string => typeof x === 'string') : []
  const dropped = new Set((former?.tags ?? []).filter((t) => !cfg.tags.includes(t)))
  const tags = [...have.filter((t) => !dropped.has(t)), ...cfg.tags.filter((t) => !have.includes(t))]
  const tagsChanged = former === undefined || former.tags.length !== cfg.tags.length || former.tags.some((t) => !cfg.tags.includes(t))
  if (tagsChanged && (tags.length !== have.length || tags.some((t) => !have.includes(t)))) ops.push({ op: 'replace', path: '/tags', value: tags })
  if (former?.visibility !== undefined && former.visibility !== cfg.visibility && image.visibility !== cfg.visibility) {
    ops.push({ op: 'replace', path: '/visibility', value: cfg.visibility })
  }
  return ops
}
