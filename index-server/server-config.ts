import { Type, type Static } from '@sinclair/typebox'
import { parseDuration } from '../lib/duration.js'
import { loadConfig, validateConfig } from '../lib/config.js'
import { DurationString, TimerDuration } from '../lib/duration-schema.js'

/** The YAML config of `imgdist-index serve --config FILE`; see deploy/index.example.yaml. */

export const IndexServerConfig = Type.Object({
  dataDir: Type.String({ minLength: 1, description: 'data directory (root chain, index, images, torrents, state)' }),
  listen: Type.String({ pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}$', default: '0.0.0.0:8080', description: 'HOST:PORT' }),
  publicUrl: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$', description: 'http(s) URL agents use to reach this server' })),
  trustProxy: Type.Boolean({ default: false, description: 'trust X-Forwarded-* from a reverse proxy' }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' }),
  seeding: Type.Object({
    enabled: Type.Boolean({ default: true }),
    dht: Type.Boolean({ default: true }),
    utp: Type.Boolean({ default: false, description: 'not implemented: the origin seeds over TCP; true only logs a warning' }),
    torrentPort: Type.Integer({ minimum: 0, maximum: 65535, default: 6881, description: 'TCP/uTP port for peers (0: any free port)' }),
    uploadLimit: Type.Integer({ minimum: -1, default: -1, description: 'bytes per second, -1 for unlimited' }),
    egressBudget: Type.Union([Type.Literal(0), Type.Number({ minimum: 1, maximum: 1000 })], {
      default: 0,
      description: 'copies of each image the seeder sends while peers that hold it could send them instead: 0 (no limit) or a number from 1 to 1000, e.g. 1.5'
    }),
    rescanInterval: TimerDuration('1m', 'how often to look for image files and torrents placed by hand')
  }, { additionalProperties: false, default: {} }),
  torrents: Type.Object({
    injectTracker: Type.Boolean({ default: true, description: 'add <publicUrl>/announce to served .torrent files' }),
    injectWebSeed: Type.Boolean({ default: true, description: 'add <publicUrl>/v1/images/<id> to served .torrent files' })
  }, { additionalProperties: false, default: {} }),
  limits: Type.Object({
    publishPerMinute: Type.Integer({ minimum: 1, maximum: 100000, default: 30, description: 'PUT requests per client address per minute' }),
    reportsPerMinute: Type.Integer({ minimum: 1, maximum: 1000000, default: 600, description: 'POST /v1/reports per client address per minute' }),
    idleTimeout: TimerDuration('2m', 'drop a connection idle for this long'),
    watchers: Type.Integer({ minimum: 0, maximum: 1000000, default: 10000, description: 'GETs of index.yaml held open at once until the next publish (0: none)' }),
    // Measured with the built server on 2 cores: a small index is checked within 64 MiB; the
    // largest valid one (10 000 images) needs 192-256 MiB and 4-6 s. Checks run one at a time,
    // so a check allowed more than 10m would hold up every publish queued behind it.
    uploadCheckMemory: Type.Integer({ minimum: 64, maximum: 16384, default: 768, description: 'MiB of heap for parsing and verifying one uploaded index or root, beyond which its PUT is refused with 413 PARSE_LIMIT' }),
    uploadCheckTime: TimerDuration('30s', 'time for parsing and verifying one uploaded index or root, beyond which its PUT is refused with 413 PARSE_LIMIT', { ms: 600_000, text: '10m' })
  }, { additionalProperties: false, default: {} }),
  cache: Type.Object({
    indexMaxAge: DurationString('30s', 'Cache-Control max-age of index.yaml and root.yaml')
  }, { additionalProperties: false, default: {} }),
  fleet: Type.Object({
    staleAfter: DurationString('10m', 'a site without a report for this long is shown as stale'),
    refresh: DurationString('15s', 'refresh period of the fleet page')
  }, { additionalProperties: false, default: {} })
}, { additionalProperties: false })
export type IndexServerConfig = Static<typeof IndexServerConfig>

export interface ServeFlags { dataDir?: string, listen?: string, publicUrl?: string, dht?: boolean, torrentPort?: number, seed?: boolean }

/** File first, flags override, then one validation naming every bad field of the result. */
export function resolveServeConfig (fileText: string | undefined, file: string | undefined, flags: ServeFlags): IndexServerConfig {
  const base = fileText === undefined ? {} : structuredClone(loadConfig(Type.Unknown(), fileText, file ?? 'config')) as Record<string, unknown>
  const merged: Record<string, unknown> = { ...(base ?? {}) }
  if (flags.dataDir !== undefined) merged.dataDir = flags.dataDir
  if (flags.listen !== undefined) merged.listen = flags.listen
  if (flags.publicUrl !== undefined) merged.publicUrl = flags.publicUrl
  const seeding = { ...((merged.seeding as Record<string, unknown> | undefined) ?? {}) }
  if (flags.dht !== undefined) seeding.dht = flags.dht
  if (flags.torrentPort !== undefined) seeding.torrentPort = flags.torrentPort
  if (flags.seed !== undefined) seeding.enabled = flags.seed
  if (Object.keys(seeding).length > 0) merged.seeding = seeding
  return validateConfig(IndexServerConfig, merged, file ?? 'command line')
}

export function ms (d: string): number { return parseDuration(d) }
