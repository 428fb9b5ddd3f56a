import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { ImgdistError } from '../lib/errors.js'
import type { PeerInfo } from '../swarm/swarm.js'
import type { PollStatus } from './catalogue.js'
import type { ImageView } from './views.js'

/** The operator API of DESIGN.md §5 (JSON). It listens on 127.0.0.1 by default: it has no auth of its own. */

export interface AgentStatus {
  site: string
  agentVersion: string
  paused: boolean
  /** when the operator paused (absent for a pause saved by an agent before session 21) */
  pausedAt?: string
  startedAt: string
  torrentPort: number
  /** the DHT node (UDP port, routing table size); absent when swarm.dht.enabled is false */
  dht?: { port?: number, nodes: number }
  catalogues: PollStatus[]
  images: Record<string, number>
  downRate: number
  upRate: number
  /** BitTorrent connections */
  peers: number
  /** web seeds (BEP 19) that sent this agent bytes */
  webSeeds: number
  /** status reports to the index server; absent when the config has no `report:` */
  report?: { url: string, lastSent?: string, lastError?: string, lastErrorAt?: string }
  /** each target's own view (a Glance target: endpoint, credential source, last image id, last error) */
  targets: TargetView[]
  /** the last config reload (SIGHUP); absent until the first */
  reload?: ReloadStatus
}

/**
 * A config reload: when, what of the file differs from what runs and waits for a restart, and,
 * when the reload was refused (the file does not validate), why: the config running is then the
 * one before it, and `needRestart` is still that one's.
 */
export interface ReloadStatus {
  at: string
  needRestart: string[]
  error?: { code: string, message: string }
}

export interface TargetView {
  name: string
  type: string
  /** start-up clean-up (recover) failed; the agent runs on and the target retries per image */
  recoverError?: { code: string, message: string }
  [key: string]: unknown
}

/** What an operator action did: the images it touched, and a line per catalogue's record. */
export interface ActionResult { images: ImageView[], messages: string[] }

/**
 * What pause or resume did: `changed` is false when the agent already was in that state, so
 * that the operator is not told "paused" by a command that did nothing. `pausedAt`: since when
 * the agent is paused (pause only; absent for a pause saved by an agent before session 21).
 */
export interface PauseResult { changed: boolean, pausedAt?: string }

export interface AgentControl {
  status: () => AgentStatus
  images: () => ImageView[]
  peers: () => PeerInfo[]
  /** throw an ImgdistError when the action can be done to no record of `id` */
  approve: (id: string) => Promise<ActionResult>
  retry: (id: string) => Promise<ActionResult>
  /** in effect at once, and kept across restarts */
  pause: () => Promise<PauseResult>
  resume: () => Promise<PauseResult>
  metrics: Registry
}

/**
 * Every error answer is `{code, message}`, the envelope of the index server (index-server/
 * http-errors.ts) and of ImgdistError.toJSON: one shape for scripts and for the CLI to read.
 */
function refusal (code: string, message: string): { code: string, message: string } { return { code, message } }

/**
 * The API declares no schemas, so it needs neither of fastify's compilers; left to itself,
 * fastify loads ajv and fast-json-stringify at every start to build both (about 15 ms of CPU of
 * an agent's start, which bench:swarm pays seven times on two cores). A route that adds a schema
 * gets this error rather than a silently unchecked body.
 */
const noSchemas = {
  buildValidator: () => () => { throw new Error('the agent API compiles no schemas: declare a validator in the route handler, or remove noSchemas in agent/api.ts') },
  buildSerializer: () => () => { throw new Error('the agent API compiles no schemas: declare a serializer in the route handler, or remove noSchemas in agent/api.ts') }
}

export async function createApi (ctl: AgentControl): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, schemaController: { compilersFactory: noSchemas } })
  // fastify's own errors (a bad body, an unknown route, a throw) would otherwise be {statusCode, error, message}
  app.setErrorHandler(async (error, _req, reply) => {
    const e = error as Error & { statusCode?: number }
    const status = e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500
    const code = error instanceof ImgdistError ? error.code : status === 413 ? 'TOO_LARGE' : status < 500 ? 'BAD_REQUEST' : 'INTERNAL'
    return await reply.code(status).send(refusal(code, e.message))
  })
  app.setNotFoundHandler(async (req, reply) => await reply.code(404).send(refusal('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`)))
  app.get('/healthz', async () => ({ ok: true }))
  app.get('/v1/status', async () => ctl.status())
  app.get('/v1/images', async () => ({ images: ctl.images() }))
  app.get('/v1/peers', async () => ({ peers: ctl.peers() }))
  const act = (fn: (id: string) => Promise<ActionResult>) => async (req: { params: unknown }, reply: { code: (n: number) => unknown }) => {
    const id = (req.params as { id: string }).id
    let out: ActionResult
    try { out = await fn(id) } catch (err) {
      if (!(err instanceof ImgdistError)) throw err
      reply.code(409)
      return refusal(err.code, err.message)
    }
    if (out.images.length === 0) { reply.code(404); return refusal('NOT_FOUND', `no image "${id}" at this site`) }
    return out
  }
  app.post('/v1/images/:id/approve', act(ctl.approve))
  app.post('/v1/images/:id/retry', act(ctl.retry))
  // `paused` as before session 25, for the scripts that read it
  app.post('/v1/pause', async () => ({ paused: true, ...(await ctl.pause()) }))
  app.post('/v1/resume', async () => ({ paused: false, ...(await ctl.resume()) }))
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', ctl.metrics.contentType)
    return await ctl.metrics.metrics()
  })
  return app
}
