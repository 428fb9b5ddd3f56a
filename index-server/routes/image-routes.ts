import { createReadStream } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ImgdistError, toImgdistError } from '../../lib/errors.js'
import { ID_PATTERN, type ImageEntry } from '../../lib/schema.js'
import type { IndexContext } from '../context.js'
import { refuse } from '../http-errors.js'
import { parseRange } from '../http-range.js'

const Params = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) })

function listed (ctx: IndexContext, id: string): ImageEntry | undefined {
  return ctx.catalogue.index?.doc.signed.images.find((i) => i.id === id)
}

/**
 * Image bytes: the BEP 19 web seed and plain HTTP download (GET|HEAD with one Range), and the
 * streaming upload (PUT) that only keeps bytes hashing to the signed sha512 and size.
 */
export async function imageRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  // Uploads are streamed by the handler from request.raw: no parser may buffer them.
  r.removeAllContentTypeParsers()
  r.addContentTypeParser('*', (_req, _payload, done) => { done(null) })

  r.route({
    method: ['GET', 'HEAD'],
    url: '/v1/images/:id',
    exposeHeadRoute: false,
    schema: { params: Params },
    handler: async (request, reply) => {
      const entry = listed(ctx, request.params.id)
      if (entry === undefined || !(await ctx.images.isVerified(entry))) {
        return await refuse(reply, new ImgdistError('NOT_FOUND', `image "${request.params.id}" is not listed in the current index or its bytes are not here yet`))
      }
      const etag = `"sha512-${entry.sha512.slice(0, 32)}"`
      const size = entry.size
      reply.header('Accept-Ranges', 'bytes').header('ETag', etag).header('Cache-Control', 'public, max-age=3600')
        .type('application/octet-stream')
      const ifRange = request.headers['if-range']
      const range = ifRange !== undefined && ifRange !== etag ? { kind: 'full' as const } : parseRange(request.headers.range, size)
      if (range.kind === 'unsatisfiable') {
        return await reply.code(416).header('Content-Range', `bytes */${size}`).header('Content-Length', '0').send()
      }
      const start = range.kind === 'partial' ? range.start : 0
      const end = range.kind === 'partial' ? range.end : size - 1
      if (range.kind === 'partial') reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`)
      reply.header('Content-Length', String(end - start + 1))
      if (request.method === 'HEAD') return await reply.send()
      const stream = createReadStream(ctx.images.imagePath(entry.id), { start, end, highWaterMark: 256 * 1024 })
      stream.on('data', (chunk) => { ctx.metrics.webSeedBytes.inc(chunk.length) })
      return await reply.send(stream)
    }
  })

  r.put('/v1/images/:id', {
    schema: { params: Params },
    config: { rateLimit: { max: ctx.rateLimit.publishMax, timeWindow: ctx.rateLimit.windowMs } }
  }, async (request, reply) => {
    const entry = listed(ctx, request.params.id)
    try {
      if (entry === undefined) throw new ImgdistError('NOT_FOUND', `image "${request.params.id}" is not listed in the current index; publish the index first`)
      const declared = request.headers['content-length']
      if (declared !== undefined && Number(declared) > entry.size) {
        throw new ImgdistError('TOO_LARGE', `upload declares ${declared} bytes; "${entry.id}" is signed as ${entry.size}`)
      }
      await ctx.images.receive(entry, request.raw, (n) => ctx.metrics.uploadBytesReceived.inc(n))
    } catch (err) {
      const e = toImgdistError(err)
      ctx.metrics.imageUploads.inc({ result: 'refused', code: e.code })
      request.log.warn({ id: request.params.id, code: e.code, reason: e.message }, 'image upload refused')
      // The client may still be sending: close the connection rather than read gigabytes to discard them.
      reply.header('Connection', 'close')
      if (e.code === 'INTERNAL' || e.code === 'IO_ERROR') throw err
      return await refuse(reply, e)
    }
    ctx.metrics.imageUploads.inc({ result: 'accepted', code: '' })
    request.log.info({ id: entry.id, size: entry.size }, 'image stored')
    ctx.resync()
    return await reply.send({ accepted: true, id: entry.id, size: entry.size, sha512: entry.sha512 })
  })
}
