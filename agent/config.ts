import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { loadConfig } from '../lib/config.js'
import { parseDuration } from '../lib/duration.js'
import { ConfigError } from '../lib/errors.js'
import { splitHostPort } from '../lib/host-port.js'
import { AgentConfigSchema, type AgentConfig, type PolicyConfig, type TargetConfig } from './config-schema.js'

/** The config after validation, with paths made absolute and durations in milliseconds. */
export interface ResolvedConfig extends Omit<AgentConfig, 'targets' | 'subscriptions' | 'report' | 'policy'> {
  configPath: string
  policy: ResolvedPolicy
  targets: TargetConfig[]
  subscriptions: Array<AgentConfig['subscriptions'][number] & { pollIntervalMs: number, label: string }>
  report?: { url: string, siteKey: string, intervalMs: number }
  retryInitialMs: number
  retryMaxMs: number
  apiHost: string
  apiPort: number
}

export type ResolvedPolicy = PolicyConfig & { retireGraceMs: number }

/** Validates the text of a config file; `base` resolves relative paths (the config's folder). */
export function resolveConfig (text: string, configPath: string): ResolvedConfig {
  const cfg = loadConfig(AgentConfigSchema, text, `agent config ${configPath}`)
  const base = dirname(resolve(configPath))
  const abs = (p: string): string => isAbsolute(p) ? p : resolve(base, p)
  const problems: string[] = []
  // the schema's pattern lets through some text that is still no URL, e.g. "http://[::1/x"
  const hostOf = (url: string, field: string): string => {
    try { return new URL(url).host } catch { problems.push(`${field}: "${url}" is not a valid URL`); return '' }
  }
  cfg.subscriptions.forEach((s, i) => {
    if (s.name !== undefined) hostOf(s.url, `subscriptions[${i}].url`)
    s.mirrors.forEach((m, j) => hostOf(m, `subscriptions[${i}].mirrors[${j}]`))
  })
  if (cfg.report !== undefined) hostOf(cfg.report.url, 'report.url')
  // the schema has run parseDuration on every duration (lib/duration-schema.ts): none throws here
  const ms = (v: string): number => v === '0' ? 0 : parseDuration(v)
  const dataDir = abs(cfg.dataDir)
  const targets = cfg.targets.length > 0
    ? cfg.targets.map((t) => t.type === 'directory' ? { ...t, path: abs((t as { path: string }).path) } : t)
    : [{ name: 'images', type: 'directory' as const, path: join(dataDir, 'images') }]
  const names = new Set<string>()
  targets.forEach((t, i) => {
    if (names.has(t.name)) problems.push(`targets[${i}].name: "${t.name}" is used by another target`)
    names.add(t.name)
  })
  const subscriptions = cfg.subscriptions.map((s, i) => ({
    ...s,
    label: s.name ?? hostOf(s.url, `subscriptions[${i}].url`),
    url: s.url.endsWith('/') ? `${s.url}index.yaml` : s.url,
    root: abs(s.root),
    pollIntervalMs: ms(s.pollInterval)
  }))
  const listen = splitHostPort(cfg.api.listen)
  if (listen.port > 65535) problems.push(`api.listen: port ${listen.port} is above 65535`)
  const policy = { ...cfg.policy, retireGraceMs: ms(cfg.policy.retireGrace) }
  const report = cfg.report === undefined
    ? undefined
    : { url: cfg.report.url, siteKey: abs(cfg.report.siteKey), intervalMs: ms(cfg.report.interval) }
  const retryInitialMs = ms(cfg.retry.initial)
  const retryMaxMs = ms(cfg.retry.max)
  if (problems.length > 0) throw new ConfigError(`agent config ${configPath} is invalid`, problems)
  const { report: _raw, ...rest } = cfg
  return {
    ...rest, configPath, dataDir, targets, subscriptions, policy, retryInitialMs, retryMaxMs,
    apiHost: listen.host, apiPort: listen.port, ...(report !== undefined ? { report } : {})
  }
}

export async function readConfigFile (path: string): Promise<ResolvedConfig> {
  let text: string
  try { text = await readFile(path, 'utf8') } catch (err) {
    throw new ConfigError(`cannot read agent config ${path}: ${(err as Error).message}`)
  }
  return resolveConfig(text, path)
}
