import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { Agent, type Dispatcher } from 'undici'
import type { ResolvedCloud } from './clouds-config.js'
import type { GlanceTargetConfig } from './config-schema.js'
import { GlanceClient } from './glance-client.js'
import { ImageApi } from './image-api.js'
import { findImageEndpoint, KeystoneSession } from './keystone-auth.js'

/**
 * How a Glance target reaches its cloud: one keep-alive HTTP agent (with the cloud's CA and
 * `insecure`), the Keystone session over it, and Glance's image API over both, sharing the
 * target's timeouts and retry settings.
 */
export interface GlanceConnection {
  session: KeystoneSession
  client: GlanceClient
  images: ImageApi
  /** closes the HTTP agent, unless the caller passed its own (a test's MockAgent) */
  close: () => Promise<void>
}

export function connectGlance (cfg: GlanceTargetConfig, cloud: ResolvedCloud, log: Logger | undefined, dispatcher?: Dispatcher): GlanceConnection {
  const own = dispatcher === undefined
  const http = dispatcher ?? new Agent({
    keepAliveTimeout: 30_000,
    connections: 8,
    connect: {
      timeout: 10_000,
      rejectUnauthorized: !cloud.insecure,
      ...(cloud.cacert !== undefined ? { ca: readFileSync(cloud.cacert) } : {})
    }
  })
  const retry = { maxAttempts: cfg.maxAttempts, retryBaseMs: cfg.retryBaseMs, retryMaxMs: cfg.retryMaxMs }
  const session = new KeystoneSession({
    cloud, dispatcher: http, logger: log, requestTimeoutMs: cfg.requestTimeoutMs, authFailureHoldMs: cfg.authFailureHoldMs, ...retry
  })
  const client = new GlanceClient({
    session,
    dispatcher: http,
    endpointOverride: cloud.endpoint,
    interface: cloud.interface,
    region: cloud.region,
    logger: log,
    requestTimeoutMs: cfg.requestTimeoutMs,
    uploadTimeoutMs: cfg.uploadTimeoutMs,
    findEndpoint: (t) => findImageEndpoint(t.catalog, cloud.interface, cloud.region),
    ...retry
  })
  return { session, client, images: new ImageApi(client), close: async () => { if (own) await http.close() } }
}
