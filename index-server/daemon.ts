import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { ConfigError } from '../lib/errors.js'
import { dataPaths } from './data-dir.js'
import { OriginSeeder } from './seeder.js'
import { buildServer } from './server.js'
import { splitHostPort } from '../lib/host-port.js'
import { listenError } from '../lib/listen-error.js'
import { ms, type IndexServerConfig } from './server-config.js'

export interface IndexDaemon {
  app: FastifyInstance
  /** http://host:port actually bound (port 0 resolved) */
  url: string
  seeder: OriginSeeder | undefined
  /** Drains: stops accepting, finishes in-flight requests, closes the tracker, seeder and LevelDB. Idempotent. */
  close: () => Promise<void>
}

/** `imgdist-index serve`: the HTTP server, then the origin seeder announcing to it, then a first sync. */
export async function startIndexDaemon (config: IndexServerConfig, opts: { logger?: boolean | Record<string, unknown> } = {}): Promise<IndexDaemon> {
  const { host, port } = splitHostPort(config.listen)
  if (port > 65535) throw new ConfigError('config is invalid', [`listen: port ${port} is over 65535`])
  const seeder = config.seeding.enabled
    ? new OriginSeeder({
      imagesDir: dataPaths(config.dataDir).imagesDir,
      dht: config.seeding.dht,
      torrentPort: config.seeding.torrentPort,
      uploadLimit: config.seeding.uploadLimit,
      egressBudget: config.seeding.egressBudget
    })
    : undefined
  const app = await buildServer({
    dataDir: config.dataDir,
    publicUrl: config.publicUrl,
    trustProxy: config.trustProxy,
    logger: opts.logger ?? { level: config.logLevel },
    seeder,
    injectTracker: config.torrents.injectTracker,
    injectWebSeed: config.torrents.injectWebSeed,
    indexMaxAgeSeconds: Math.round(ms(config.cache.indexMaxAge) / 1000),
    staleAfterMs: ms(config.fleet.staleAfter),
    refreshSeconds: Math.max(1, Math.round(ms(config.fleet.refresh) / 1000)),
    rateLimit: { publishMax: config.limits.publishPerMinute, reportMax: config.limits.reportsPerMinute, windowMs: 60_000 },
    connectionTimeoutMs: ms(config.limits.idleTimeout),
    maxWatchers: config.limits.watchers,
    uploadLimits: { heapMiB: config.limits.uploadCheckMemory, deadlineMs: ms(config.limits.uploadCheckTime) }
  })
  let timer: NodeJS.Timeout | undefined
  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      if (timer !== undefined) clearInterval(timer)
      await app.close()
      await seeder?.close()
    })()
    await closing
  }
  try {
    await app.listen({ host, port }).catch((err: unknown) => { throw listenError(err, config.listen, '--listen, or listen: in the config') })
    const addr = app.server.address()
    const boundPort = typeof addr === 'object' && addr !== null ? addr.port : port
    const loopback = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
    const url = `http://${loopback.includes(':') ? `[${loopback}]` : loopback}:${boundPort}`
    if (seeder !== undefined) {
      // Announce where peers can reach this host: via the public URL when set, so the tracker
      // records the host's own address, not loopback.
      const announce = `${(config.publicUrl ?? url).replace(/\/+$/, '')}/announce`
      if (config.seeding.utp) app.log.warn('seeding.utp: uTP is not implemented by the engine (swarm/); the origin seeds over TCP only')
      const tracker = app.imgdist.tracker
      await seeder.start([announce], app.log.child({ part: 'seeder' }) as unknown as Logger, (infoHash, self) => tracker.seeds(infoHash, self))
    }
    // The rescan also verifies files placed by hand for the web seed, so it runs with seeding off too.
    app.imgdist.resync()
    timer = setInterval(() => app.imgdist.resync(), ms(config.seeding.rescanInterval))
    timer.unref()
    app.log.info({ url, publicUrl: config.publicUrl, torrentPort: seeder?.port, catalogue: app.imgdist.catalogue.name }, 'imgdist-index serving')
    return { app, url, seeder, close }
  } catch (err) {
    await close().catch(() => {})
    throw err
  }
}
