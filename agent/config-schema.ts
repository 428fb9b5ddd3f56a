import { Type, type Static } from '@sinclair/typebox'
import { DurationString, TimerDuration } from '../lib/duration-schema.js'
import { Name } from './name-schema.js'
import { GlanceTargetConfig } from './targets/glance/config-schema.js'

/**
 * The agent's YAML config (deploy/agent.example.yaml documents every field). Durations are
 * strings like `5m` (lib/duration.ts); sizes are integers in bytes.
 */

const HttpUrl = Type.String({ pattern: '^https?://[^\\s]+$', description: 'an http(s) URL' })
const Glob = Type.String({ minLength: 1, maxLength: 256, description: 'a glob: * matches anything, ? one character' })
const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })

export const PolicyRule = Type.Object({
  catalogue: Type.Optional(Glob),
  id: Type.Optional(Glob),
  name: Type.Optional(Glob),
  os: Type.Optional(Glob),
  arch: Type.Optional(Glob),
  diskFormat: Type.Optional(Glob),
  maxSize: Type.Optional(Bytes)
}, { additionalProperties: false })
export type PolicyRule = Static<typeof PolicyRule>

export const PolicyConfig = Type.Object({
  /** an image must match at least one allow rule (none listed: everything is allowed) */
  allow: Type.Array(PolicyRule, { default: [] }),
  /** an image matching any deny rule is rejected, whatever allow says */
  deny: Type.Array(PolicyRule, { default: [] }),
  maxSize: Type.Optional(Bytes),
  approval: Type.Union([Type.Literal('auto'), Type.Literal('manual')], { default: 'auto' }),
  retire: Type.Union([Type.Literal('deactivate'), Type.Literal('hide'), Type.Literal('delete'), Type.Literal('keep')], { default: 'deactivate' }),
  // the union's own description is what a refusal shows: TypeBox names no branch of a union
  retireGrace: Type.Union([DurationString(undefined, 'how long to wait before retiring an image'), Type.Literal('0')],
    { default: '0', description: 'how long to wait before retiring an image: "0" (at once) or a duration like 1h (s, m, h, d, w), above 0' })
}, { additionalProperties: false, default: {} })
export type PolicyConfig = Static<typeof PolicyConfig>

export const DirectoryTargetConfig = Type.Object({
  name: Name,
  type: Type.Literal('directory'),
  path: Type.String({ minLength: 1 })
}, { additionalProperties: false })

/** Told apart by `type`; lib/validate.ts then names the bad fields of the branch it picks. */
export const TargetConfig = Type.Union([DirectoryTargetConfig, GlanceTargetConfig])
export type TargetConfig = Static<typeof TargetConfig>

export const SubscriptionConfig = Type.Object({
  name: Type.Optional(Name),
  /** the index.yaml URL (a URL ending in / means `<url>index.yaml`) */
  url: HttpUrl,
  mirrors: Type.Array(HttpUrl, { default: [], maxItems: 16 }),
  /** path of the root.yaml pinned at install time */
  root: Type.String({ minLength: 1 }),
  pollInterval: TimerDuration('5m', 'how often to look for a new index'),
  /**
   * Between polls, keep a conditional GET open at the index server (`Prefer: wait`), which answers
   * it the moment a new index is published. The poll interval stays the fallback for servers
   * and mirrors that answer at once.
   */
  watch: Type.Boolean({ default: true })
}, { additionalProperties: false })
export type SubscriptionConfig = Static<typeof SubscriptionConfig>

export const AgentConfigSchema = Type.Object({
  site: Name,
  dataDir: Type.String({ minLength: 1 }),
  cache: Type.Object({
    maxBytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 100 * 1024 ** 3 })
  }, { additionalProperties: false, default: {} }),
  api: Type.Object({
    listen: Type.String({ pattern: '^[^\\s:]+:\\d{1,5}$|^\\[[0-9a-fA-F:]+\\]:\\d{1,5}$', default: '127.0.0.1:7800', description: 'HOST:PORT' })
  }, { additionalProperties: false, default: {} }),
  swarm: Type.Object({
    torrentPort: Type.Integer({ minimum: 0, maximum: 65535, default: 6881 }),
    dht: Type.Object({
      enabled: Type.Boolean({ default: true }),
      bootstrap: Type.Array(Type.String({ pattern: '^[^\\s:]+:\\d{1,5}$', description: 'HOST:PORT' }), { default: [] }),
      port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 }))
    }, { additionalProperties: false, default: {} }),
    lsd: Type.Boolean({ default: false }),
    /** peer exchange (BEP 11): connected peers tell each other of the rest of the swarm; never for private torrents */
    pex: Type.Boolean({ default: true }),
    trackers: Type.Array(Type.String({ pattern: '^(https?|udp|wss?)://[^\\s]+$', description: 'a tracker URL' }), { default: [] }),
    /** bytes per second; 0 = unlimited */
    uploadLimit: Type.Integer({ minimum: 0, default: 0 }),
    downloadLimit: Type.Integer({ minimum: 0, default: 0 }),
    maxConns: Type.Integer({ minimum: 1, maximum: 10000, default: 55 }),
    maxConcurrentDownloads: Type.Integer({ minimum: 1, maximum: 64, default: 2 })
  }, { additionalProperties: false, default: {} }),
  subscriptions: Type.Array(SubscriptionConfig, { minItems: 1, maxItems: 64 }),
  policy: PolicyConfig,
  targets: Type.Array(TargetConfig, { default: [], maxItems: 16 }),
  report: Type.Optional(Type.Object({
    url: HttpUrl,
    siteKey: Type.String({ minLength: 1, description: 'path of the site secret key file (NAME.key)' }),
    interval: TimerDuration('1m', 'how often to send a report')
  }, { additionalProperties: false })),
  retry: Type.Object({
    initial: TimerDuration('5s', 'first wait before retrying a failed step (download, verification, registration)'),
    max: TimerDuration('10m', 'longest wait between retries (the wait doubles up to it)')
  }, { additionalProperties: false, default: {} }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), { default: 'info' })
}, { additionalProperties: false })
export type AgentConfig = Static<typeof AgentConfigSchema>
