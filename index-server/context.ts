import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
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
  /** Re-computes what the origin seeds (after a publish or an upload); never throws. */
  resync: () => void
  publicUrl: string | undefined
  injectTracker: boolean
  injectWebSeed: boolean
  indexMaxAgeSeconds: number
  staleAfterMs: number
  refreshSeconds: number
  rateLimit: { publishMax: number, reportMax: number, windowMs: number }
  seederStats: () => { seeding: number } | undefined
}

/** The URL agents use to reach this server: the configured public URL, else what the client asked for. */
export function baseUrl (ctx: IndexContext, request: FastifyRequest): string {
  if (ctx.publicUrl !== undefined) return ctx.publicUrl.replace(/\/+$/, '')
  return `${request.protocol}://${request.host}`
}
