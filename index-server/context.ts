import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { CatalogueExpiry } from './catalogue-expiry.js'
import type { CatalogueStore } from './catalogue-store.js'
import type { ImageStore } from './image-store.js'
import type { IndexWatch } from './index-watch.js'
import type { IndexMetrics } from './metrics.js'
import type { ReportStore } from './report-store.js'
import type { SiteKeys } from './site-keys.js'
import type { TorrentStore } from './torrent-store.js'
import type { OriginTracker } from './tracker.js'

/** What the route plugins share: the stores of one data dir plus the resolved options. */
export interface IndexContext {
  catalogue: CatalogueStore
  /** when the served root and index expire; warns in the log when one does */
  expiry: CatalogueExpiry
  images: ImageStore
  torrents: TorrentStore
  sites: SiteKeys
  reports: ReportStore
  tracker: OriginTracker
  /** held GETs of index.yaml, released when a new index is published */
  watch: IndexWatch
  metrics: IndexMetrics
  log: FastifyBaseLogger
  now: () => Date
  /** Rescans: verifies files placed by hand and re-computes what the origin seeds (after a publish, an upload, SIGHUP, the timer); never throws. */
  resync: () => void
  publicUrl: string | undefined
  /** X-Forwarded-Host/-Proto are believed (fastify trustProxy), so they shape a derived URL too */
  trustProxy: boolean
  injectTracker: boolean
  injectWebSeed: boolean
  indexMaxAgeSeconds: number
  staleAfterMs: number
  refreshSeconds: number
  rateLimit: { publishMax: number, reportMax: number, windowMs: number }
  seederStats: () => { seeding: number } | undefined
}

/**
 * The URL agents use to reach this server: the configured public URL, else what the client asked
 * for. `vary` lists the request headers a derived URL came from: a response embedding it must
 * name them in Vary (and not be shared), or a cache would hand one client's Host to everyone.
 */
export function baseUrl (ctx: IndexContext, request: FastifyRequest): { url: string, vary?: string } {
  if (ctx.publicUrl !== undefined) return { url: ctx.publicUrl.replace(/\/+$/, '') }
  return { url: `${request.protocol}://${request.host}`, vary: ctx.trustProxy ? 'Host, X-Forwarded-Host, X-Forwarded-Proto' : 'Host' }
}
