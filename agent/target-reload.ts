import { changedFields } from '../lib/changed-fields.js'
import type { TargetConfig } from './config-schema.js'
import type { Target } from './targets/target.js'

/** What a reloaded config (SIGHUP) does to the targets. */
export interface TargetReload {
  /** `targets.<name>.<field>`: applied at once by apply() */
  changed: string[]
  /** `targets` (a target added, removed, renamed or moved) or `targets.<name>.<field>`: need a restart */
  restart: string[]
  apply: () => void
}

/**
 * Splits the targets' part of a reloaded config into what the running targets take at once
 * (Target.reconfigure: a Glance target's image settings) and what needs a restart. The targets
 * are built at start, in the config's order, which is the order they register in: another list
 * of targets needs a restart. Throws (ConfigError, naming the target and field) before anything
 * is applied when a target refuses its new entry.
 */
export function reloadTargets (targets: Target[], started: TargetConfig[], next: TargetConfig[]): TargetReload {
  const sameList = started.length === next.length && started.every((c, i) => c.name === next[i]?.name && c.type === next[i]?.type)
  if (!sameList) return { changed: [], restart: ['targets'], apply: () => {} }
  const changed: string[] = []
  const restart: string[] = []
  const applies: Array<() => void> = []
  started.forEach((cfg, i) => {
    const nextCfg = next[i] as TargetConfig
    const target = targets.find((t) => t.name === cfg.name)
    // A target that reconfigures compares with what it runs (an earlier reload's settings
    // included); for the others, what runs is the config they were started with.
    const r = target?.reconfigure?.(nextCfg)
    if (r === undefined) { restart.push(...changedFields(cfg, nextCfg).map((f) => `targets.${cfg.name}.${f}`)); return }
    changed.push(...r.changed.map((f) => `targets.${cfg.name}.${f}`))
    restart.push(...r.restart.map((f) => `targets.${cfg.name}.${f}`))
    applies.push(r.apply)
  })
  return { changed, restart, apply: () => { for (const a of applies) a() } }
}
