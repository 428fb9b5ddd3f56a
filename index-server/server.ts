import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { ImgdistError } from '../lib/errors.js'
import { MAX_WAIT_SECONDS } from '../lib/held-get.js'
import { removeStaleTemps } from './atomic-file.js'
import { CatalogueExpiry } from './catalogue-expiry.js'
import { CatalogueStore } from './catalogue-store.js'
import type { IndexContext } from './context.js'
import { dataPaths, ensureDataDirs } from './data-dir.js'
import { refuse } from './http-errors.js'
import { ImageStore } from './image-store.js'
import { IndexWatch } from './index-watch.js'
import { IndexMetrics } from './metrics.js'
import { ReportStore } from './report-store.js'
import { catalogueRoutes, YAML_TYPES } from './routes/catalogue-routes.js'
import { fleetRoutes } from './routes/fleet-routes.js'
import { imageRoutes } from './routes/image-routes.js'
import { opsRoutes } from './routes/ops-routes.js'
import { reportRoutes } from './routes/report-routes.js'
import { TORRENT_TYPE, torrentRoutes } from './routes/torrent-routes.js'
import { SeedSet } from './seed-set.js'
import type { OriginSeeder } from './seeder.js'
import { SiteKeys } from './site-keys.js'
import { TorrentStore } from './torrent-store.js'
import { OriginTracker } from './tracker.js'
import { UploadChecker, type UploadLimits } from './upload-checker.js'

declare module 'fastify' {
  interface FastifyContextConfig { publish?: 'index' | 'root', report?: boolean }
  interface FastifyInstance { imgdist: IndexContext }
}

export interface ServerOptions {
  dataDir: string
  publicUrl?: string
  trustProxy?: boolean
  logger?: FastifyServerOptions['logger']
  /** The origin seed; the server tells it what to seed after every change. Omitted in unit tests. */
  seeder?: OriginSeeder
  injectTracker?: boolean
  injectWebSeed?: boolean
  indexMaxAgeSeconds?: number
  staleAfterMs?: number
  refreshSeconds?: number
  rateLimit?: { publishMax?: number, reportMax?: number, windowMs?: number }
  /** Idle socket timeout: a stalled upload is dropped, a slow but moving one is not. */
  connectionTimeoutMs?: number
  trackerIntervalMs?: number
  /** GETs of index.yaml held at once waiting for a publish (index-watch.ts) */
  maxWatchers?: number
  /** what parsing and verifying one uploaded document may cost (upload-checker.ts) */
  uploadLimits?: Partial<UploadLimits>
  now?: () => Date
}

/**
 * The imgdist-index HTTP application over one data directory. Returns the fastify instance
 * (ready for `inject()` or `listen()`); `app.close()` closes the tracker and LevelDB, never the
 * seeder passed in, which belongs to the caller.
 */
export async function buildServer (opts: ServerOptions): Promise<FastifyInstance> {
  const paths = dataPaths(opts.dataDir)
  await ensureDataDirs(paths)
  await Promise.all([paths.dir, paths.rootDir, paths.imagesDir, paths.verifiedDir, paths.torrentsDir].map(removeStaleTemps))
  const checker = new UploadChecker(opts.uploadLimits)
  const catalogue = await CatalogueStore.open(paths, async (c) => await checker.check(c))
  const reports = await ReportStore.open(paths.stateDir)

  const app = Fastify({
    logger: opts.logger ?? false,
    trustProxy: opts.trustProxy ?? false,
    connectionTimeout: opts.connectionTimeoutMs ?? 120_000,
    keepAliveTimeout: 10_000,
    requestTimeout: 0, // multi-GiB uploads may legitimately take hours; the idle timeout guards stalls
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Fastify's two info lines per request ("incoming request", "request completed") would fill
    // the journal: every watching site holds a GET of index.yaml open and renews it, and reports
    // and tracker announces come on their own clocks. One line per request at debug instead.
    logController: new LogController({ disableRequestLogging: true })
  })

  const images = new ImageStore(paths)
  const torrents = new TorrentStore(paths)
  const allowed = (ih: string): boolean => catalogue.index?.doc.signed.images.some((i) => i.infoHash === ih) ?? false
  const tracker = new OriginTracker(allowed, {
    trustProxy: opts.trustProxy,
    intervalMs: opts.trackerIntervalMs,
    onWarning: (err) => app.log.debug({ err: err.message }, 'tracker warning')
  })
  const seeder = opts.seeder
  // a held GET is an idle socket: end it before the idle timeout would drop it
  const idleSeconds = Math.floor((opts.connectionTimeoutMs ?? 120_000) / 1000)
  const watch = new IndexWatch(catalogue, { maxWatchers: opts.maxWatchers, maxWaitSeconds: idleSeconds > 0 ? Math.max(1, Math.min(MAX_WAIT_SECONDS, idleSeconds - 5)) : MAX_WAIT_SECONDS })
  const now = opts.now ?? (() => new Date())
  const expiry = new CatalogueExpiry(catalogue, { log: app.log, now })
  const seconds = (ms: number | undefined): number => ms === undefined ? 0 : Math.floor(ms / 1000)
  const metrics = new IndexMetrics({
    watchers: () => watch.watching,
    seeder: () => seeder?.stats(),
    tracker: () => tracker.stats(),
    catalogue: () => ({ root: catalogue.root.version, index: catalogue.index?.version ?? 0 }),
    expires: () => ({ root: seconds(expiry.expiresAt('root')), index: seconds(expiry.expiresAt('index')) })
  })
  const seedSet = new SeedSet(catalogue, images, torrents, (msg, detail) => app.log.warn(detail ?? {}, msg))

  let syncing: Promise<void> | undefined
  let again = false
  let closed = false
  // Without a seeder this still verifies hand-placed files, so the web seed serves them.
  const resync = (): void => {
    if (closed) return
    if (syncing !== undefined) { again = true; return }
    syncing = (async () => {
      do {
        again = false
        try {
          const items = await seedSet.items(now())
          await seeder?.sync(items)
        } catch (err) {
          app.log.error({ err }, seeder === undefined ? 'rescan of images failed' : 'origin seeder sync failed')
        }
      } while (again && !closed)
    })().finally(() => { syncing = undefined })
  }

  const ctx: IndexContext = {
    catalogue, expiry, images, torrents, reports, tracker, watch, metrics, now, resync,
    sites: new SiteKeys(paths.sitesFile),
    log: app.log,
    publicUrl: opts.publicUrl,
    trustProxy: opts.trustProxy ?? false,
    injectTracker: opts.injectTracker ?? true,
    injectWebSeed: opts.injectWebSeed ?? true,
    indexMaxAgeSeconds: opts.indexMaxAgeSeconds ?? 30,
    staleAfterMs: opts.staleAfterMs ?? 10 * 60_000,
    refreshSeconds: opts.refreshSeconds ?? 15,
    rateLimit: { publishMax: opts.rateLimit?.publishMax ?? 30, reportMax: opts.rateLimit?.reportMax ?? 600, windowMs: opts.rateLimit?.windowMs ?? 60_000 },
    seederStats: () => seeder === undefined ? undefined : { seeding: seeder.seeding().length }
  }
  app.decorate('imgdist', ctx)

  app.addHook('onRequest', async (request, reply) => {
    const method = request.method
    metrics.inFlight.inc({ method })
    // 'close' fires for hijacked (tracker) replies and aborted requests too, unlike onResponse.
    reply.raw.once('close', () => {
      metrics.inFlight.dec({ method })
      metrics.requests.inc({ method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.raw.statusCode) })
      request.log.debug({ method, url: request.url, statusCode: reply.raw.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
    })
  })

  app.setErrorHandler(async (error, request, reply) => {
    const e = error as Error & { code?: string, statusCode?: number }
    let code: string
    let message = e.message
    if (error instanceof ImgdistError) code = error.code
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') code = 'TOO_LARGE'
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      code = 'UNSUPPORTED_MEDIA_TYPE'
      message = mediaTypeAdvice(request.method, request.routeOptions.url, request.url.split('?')[0] ?? '', request.headers['content-type'])
    }
    else if (e.statusCode === 429) code = 'RATE_LIMITED'
    else if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) code = 'BAD_REQUEST'
    else code = 'INTERNAL'
    if (code === 'TOO_LARGE') message = `request body is over the limit for ${request.url}`
    const config = request.routeOptions.config
    if (config?.publish !== undefined) metrics.publishes.inc({ document: config.publish, result: 'refused', code })
    if (config?.report === true) metrics.reports.inc({ result: 'refused', code })
    if (code === 'INTERNAL') {
      request.log.error({ err: error }, 'request failed')
      return await reply.code(500).send({ code, message: 'internal error; see the server log' })
    }
    return await refuse(reply, new ImgdistError(code, message))
  })
  app.setNotFoundHandler(async (request, reply) => await refuse(reply, new ImgdistError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`)))

  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, c) => Object.assign(new Error(`rate limit: at most ${c.max} requests per ${c.after}`), { statusCode: 429 })
  })
  await app.register(catalogueRoutes, { ctx })
  await app.register(imageRoutes, { ctx })
  await app.register(torrentRoutes, { ctx })
  await app.register(reportRoutes, { ctx })
  await app.register(fleetRoutes, { ctx })
  await app.register(opsRoutes, { ctx })

  // an index or root that expired while the server was down is named in the log at once
  expiry.start()

  // Held GETs would keep server.close() waiting for up to MAX_WAIT_SECONDS: answer them first.
  app.addHook('preClose', async () => { watch.close() })
  app.addHook('onClose', async () => {
    closed = true
    expiry.close()
    await syncing
    await tracker.close()
    await reports.close()
    await checker.close()
  })
  return app
}

/**
 * A body refused for its Content-Type before any route saw it: fastify says only "Unsupported
 * Media Type", and `curl --data-binary @index.yaml` without -H sends a form type, so say which.
 */
function mediaTypeAdvice (method: string, route: string | undefined, path: string, sent: string | undefined): string {
  const wanted = route === '/v1/index.yaml' || route === '/v1/root.yaml'
    ? YAML_TYPES.join(', ')
    : route === '/v1/reports' ? 'application/json' : route === '/v1/torrents/:file' ? TORRENT_TYPE : undefined
  const given = `Content-Type ${sent !== undefined ? `"${sent}"` : '(none)'} is not accepted by ${method} ${path}`
  return wanted !== undefined ? `${given}; send ${wanted}` : given
}
