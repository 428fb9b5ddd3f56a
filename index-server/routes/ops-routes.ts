import type { FastifyInstance } from 'fastify'
import type { IndexContext } from '../context.js'

/** Health, Prometheus metrics and the built-in tracker's announce/scrape. */
export async function opsRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  // An expired document is the endorsers' to renew, not a fault of this server: still 200, but named.
  app.get('/healthz', async () => ({
    status: 'ok',
    catalogue: ctx.catalogue.name,
    rootVersion: ctx.catalogue.root.version,
    indexVersion: ctx.catalogue.index?.version ?? null,
    rootExpires: ctx.catalogue.root.doc.signed.expires,
    indexExpires: ctx.catalogue.index?.doc.signed.expires ?? null,
    expired: ctx.expiry.expired(),
    seeding: ctx.seederStats()?.seeding ?? null
  }))

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics()
    return await reply.type(ctx.metrics.registry.contentType).send(text)
  })

  for (const action of ['announce', 'scrape'] as const) {
    app.get(`/${action}`, async (request, reply) => {
      reply.hijack()
      ctx.tracker.handle(action, request.raw, reply.raw)
    })
  }
}
