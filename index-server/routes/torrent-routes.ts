import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ImgdistError, toImgdistError } from '../../lib/errors.js'
import { MAX_TORRENT_BYTES } from '../../lib/torrent-meta.js'
import { baseUrl, type IndexContext } from '../context.js'
import { refuse } from '../http-errors.js'
import { injectSources } from '../torrent-store.js'

/** what a .torrent is served as, and the type a PUT of one should carry (application/octet-stream is taken too) */
export const TORRENT_TYPE = 'application/x-bittorrent'

const Params = Type.Object({ file: Type.String({ pattern: '^[0-9a-f]{40}\\.torrent$' }) })

/** .torrent files of the listed images; served with this server's tracker and web seed added. */
export async function torrentRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  r.addContentTypeParser([TORRENT_TYPE, 'application/octet-stream'], { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })

  const entryFor = (file: string): ReturnType<typeof find> => find(ctx, file.slice(0, 40))

  r.get('/v1/torrents/:file', { schema: { params: Params } }, async (request, reply) => {
    const entry = entryFor(request.params.file)
    const stored = entry === undefined ? undefined : await ctx.torrents.load(entry)
    if (entry === undefined || stored === undefined) {
      return await refuse(reply, new ImgdistError('NOT_FOUND', `no torrent ${request.params.file} for an image of the current index`))
    }
    const base = baseUrl(ctx, request)
    const injects = ctx.injectTracker || ctx.injectWebSeed
    const bytes = injectSources(stored.bytes, {
      ...(ctx.injectTracker ? { tracker: `${base.url}/announce` } : {}),
      ...(ctx.injectWebSeed ? { webSeed: `${base.url}/v1/images/${entry.id}` } : {})
    })
    // Without --public-url the torrent carries whatever Host the client sent: never let a shared
    // cache serve that to others.
    if (injects && base.vary !== undefined) reply.header('Vary', base.vary).header('Cache-Control', 'private, max-age=300')
    else reply.header('Cache-Control', 'public, max-age=300')
    return await reply.type(TORRENT_TYPE)
      .header('Content-Disposition', `attachment; filename="${entry.id}.torrent"`).send(Buffer.from(bytes))
  })

  r.put('/v1/torrents/:file', {
    schema: { params: Params },
    bodyLimit: MAX_TORRENT_BYTES,
    config: { rateLimit: { max: ctx.rateLimit.publishMax, timeWindow: ctx.rateLimit.windowMs } }
  }, async (request, reply) => {
    const entry = entryFor(request.params.file)
    try {
      if (entry === undefined) throw new ImgdistError('NOT_FOUND', `no image of the current index has info hash ${request.params.file.slice(0, 40)}`)
      if (!Buffer.isBuffer(request.body)) throw new ImgdistError('UNSUPPORTED_MEDIA_TYPE', `send the torrent as ${TORRENT_TYPE}`)
      await ctx.torrents.store(entry, request.body)
    } catch (err) {
      const e = toImgdistError(err)
      if (e.code === 'INTERNAL' || e.code === 'IO_ERROR') throw err
      ctx.metrics.imageUploads.inc({ result: 'refused', code: e.code })
      return await refuse(reply, e)
    }
    ctx.metrics.imageUploads.inc({ result: 'accepted', code: '' })
    ctx.resync()
    return await reply.send({ accepted: true, id: entry.id, infoHash: entry.infoHash })
  })
}

function find (ctx: IndexContext, infoHash: string): import('../../lib/schema.js').ImageEntry | undefined {
  return ctx.catalogue.index?.doc.signed.images.find((i) => i.infoHash === infoHash)
}
