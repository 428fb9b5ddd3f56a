import type { FastifyInstance } from 'fastify'
import type { IndexContext } from '../context.js'
import { buildFleet, type Fleet } from '../fleet.js'
import { renderFleetPage } from '../fleet-page.js'
import type { StoredReport } from '../report-store.js'

export async function currentFleet (ctx: IndexContext): Promise<Fleet> {
  const [sites, reports] = await Promise.all([ctx.sites.list(), ctx.reports.all()])
  const names = sites.map((s) => s.name)
  await pruneRemovedSites(ctx, new Set(names), reports)
  return buildFleet({
    catalogue: ctx.catalogue.name,
    index: ctx.catalogue.index?.doc.signed,
    siteNames: names,
    reports,
    now: ctx.now(),
    staleAfterMs: ctx.staleAfterMs
  })
}

/**
 * `imgdist-index sites remove` cannot reach LevelDB while the server holds it, so the server drops
 * the last report of a site that is no longer registered; a site added again starts afresh.
 */
async function pruneRemovedSites (ctx: IndexContext, registered: Set<string>, reports: StoredReport[]): Promise<void> {
  for (const r of reports) {
    const site = r.report.site
    // Re-read the registry: the site may have been added back since the list above.
    if (registered.has(site) || (await ctx.sites.get(site)) !== undefined) continue
    try {
      await ctx.reports.delete(site)
      ctx.log.info({ site }, 'dropped the stored report of a removed site')
    } catch (err) {
      ctx.log.warn({ site, err: (err as Error).message }, 'could not drop the stored report of a removed site')
    }
  }
}

/** The fleet: sites × images, as JSON for tools and as a page for people. */
export async function fleetRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  app.get('/v1/fleet', async (_request, reply) => {
    return await reply.header('Cache-Control', 'no-store').send(await currentFleet(ctx))
  })

  app.get('/', async (_request, reply) => {
    const html = renderFleetPage(await currentFleet(ctx), { refreshSeconds: ctx.refreshSeconds, now: ctx.now(), expiry: ctx.expiry.documents() })
    return await reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-store')
      .header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
      .header('X-Content-Type-Options', 'nosniff').send(html)
  })
}
