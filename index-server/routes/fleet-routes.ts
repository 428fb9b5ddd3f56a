import type { FastifyInstance } from 'fastify'
import type { IndexContext } from '../context.js'
import { buildFleet, type Fleet } from '../fleet.js'
import { renderFleetPage } from '../fleet-page.js'

export async function currentFleet (ctx: IndexContext): Promise<Fleet> {
  const [sites, reports] = await Promise.all([ctx.sites.list(), ctx.reports.all()])
  return buildFleet({
    catalogue: ctx.catalogue.name,
    index: ctx.catalogue.index?.doc.signed,
    siteNames: sites.map((s) => s.name),
    reports,
    now: ctx.now(),
    staleAfterMs: ctx.staleAfterMs
  })
}

/** The fleet: sites × images, as JSON for tools and as a page for people. */
export async function fleetRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  app.get('/v1/fleet', async (_request, reply) => {
    return await reply.header('Cache-Control', 'no-store').send(await currentFleet(ctx))
  })

  app.get('/', async (_request, reply) => {
    const html = renderFleetPage(await currentFleet(ctx), { refreshSeconds: ctx.refreshSeconds, now: ctx.now() })
    return await reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-store')
      .header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
      .header('X-Content-Type-Options', 'nosniff').send(html)
  })
}
