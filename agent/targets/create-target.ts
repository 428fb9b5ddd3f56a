import { ConfigError } from '../../lib/errors.js'
import type { Logger } from 'pino'
import type { TargetConfig } from '../config-schema.js'
import { createDirectoryTarget, type DirectoryTargetConfig } from './directory-target.js'
import type { Target } from './target.js'

/** What a target factory may use from the agent. */
export interface TargetDeps {
  log: Logger
  dataDir: string
  /** the agent's site name: the glance target tags its images with it (imgdist_site) */
  site?: string
  /** the process environment (OS_CLOUD, OS_* for glance), passed down from bin.ts */
  env?: Record<string, string | undefined>
}

type GlanceModule = { createGlanceTarget: (config: unknown, deps: TargetDeps) => Target | Promise<Target> }

/**
 * Builds targets from config. The glance target is its own module (agent/targets/glance/),
 * loaded only when configured; it validates its own fields.
 */
export async function createTarget (config: TargetConfig, deps: TargetDeps): Promise<Target> {
  if (config.type === 'directory') return createDirectoryTarget(config as DirectoryTargetConfig)
  if (config.type === 'glance') {
    // Loaded only when configured. A literal specifier, so the bundler (npm run bundle) inlines it.
    let mod: GlanceModule
    try {
      mod = await import('./glance/glance-target.js') as GlanceModule
    } catch (err) {
      throw new ConfigError(`target ${config.name}: glance target not available (${(err as Error).message})`)
    }
    if (typeof mod.createGlanceTarget !== 'function') throw new ConfigError(`target ${config.name}: glance target not available (no createGlanceTarget export)`)
    return await mod.createGlanceTarget(config, deps)
  }
  throw new ConfigError(`target ${(config as { name: string }).name}: unknown type ${(config as { type: string }).type}`)
}
