import type { FastifyInstance } from 'fastify'
import { ImgdistError, toImgdistError } from '../../lib/errors.js'
import { decodePublicKey } from '../../lib/keys.js'
import { MAX_REPORT_BYTES, Report, verifyReport } from '../../lib/report.js'
import { schemaProblems } from '../../lib/validate.js'
import type { IndexContext } from '../context.js'
import { refuse } from '../http-errors.js'
import { Mutex } from '../mutex.js'

/** POST /v1/reports: a status report signed by a site key registered with `imgdist-index sites add`. */
export async function reportRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  // Check-then-store of "newer than the last report" must not interleave.
  const mutex = new Mutex()
  app.post('/v1/reports', {
    bodyLimit: MAX_REPORT_BYTES,
    config: { rateLimit: { max: ctx.rateLimit.reportMax, timeWindow: ctx.rateLimit.windowMs }, report: true }
  }, async (request, reply) => {
    try {
      if (request.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== 'application/json') {
        throw new ImgdistError('UNSUPPORTED_MEDIA_TYPE', 'send the signed report as application/json')
      }
      const problems = schemaProblems(Report, request.body)
      if (problems.length > 0) throw new ImgdistError('SCHEMA_INVALID', `report fails the schema: ${problems.join('; ')}`)
      const site = (request.body as Report).signed.site
      const key = await ctx.sites.get(site)
      if (key === undefined) throw new ImgdistError('SITE_UNKNOWN', `site "${site}" is not registered here; the index operator runs: imgdist-index sites add ${site} PUBKEY --data-dir DIR`)
      await mutex.run(async () => {
        const last = await ctx.reports.get(site)
        const now = ctx.now()
        const report = verifyReport(request.body, decodePublicKey(key.publicKey), now, last?.report.sent)
        await ctx.reports.put(site, { receivedAt: now.toISOString(), report: report.signed })
      })
      ctx.metrics.reports.inc({ result: 'accepted', code: '' })
      return await reply.code(202).send({ accepted: true, site })
    } catch (err) {
      const e = toImgdistError(err)
      if (e.code === 'INTERNAL' || e.code === 'IO_ERROR') throw err
      ctx.metrics.reports.inc({ result: 'refused', code: e.code })
      request.log.warn({ code: e.code, reason: e.message }, 'report refused')
      return await refuse(reply, e)
    }
  })
}
