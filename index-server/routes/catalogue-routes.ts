import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { MAX_INDEX_BYTES, MAX_ROOT_BYTES } from '../../lib/document.js'
import { preferredWait } from '../../lib/held-get.js'
import { ImgdistError, toImgdistError } from '../../lib/errors.js'
import type { StoredDocument } from '../catalogue-store.js'
import type { IndexContext } from '../context.js'
import { refuse } from '../http-errors.js'

export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml']
const YAML_CONTENT_TYPE = 'application/yaml; charset=utf-8'

/** True when the strong ETag matches one of If-None-Match's (weak comparison, as RFC 9110 asks for GET). */
export function etagMatches (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header.trim() === '*') return true
  return header.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(etag)
}

function sendDocument (request: FastifyRequest, reply: FastifyReply, doc: StoredDocument<unknown>, cacheControl: string): FastifyReply {
  reply.header('ETag', doc.etag).header('Cache-Control', cacheControl).header('Vary', 'Accept-Encoding')
  if (etagMatches(request.headers['if-none-match'], doc.etag)) return reply.code(304).send()
  return reply.type(YAML_CONTENT_TYPE).send(doc.bytes)
}

/** GET and PUT of root.yaml and index.yaml (DESIGN.md §5): the signature is the only authorisation. */
export async function catalogueRoutes (app: FastifyInstance, { ctx }: { ctx: IndexContext }): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  // Keep the exact bytes: signatures cover the canonical form, but agents and caches get what was signed and uploaded.
  r.addContentTypeParser(YAML_TYPES, { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })

  // Agents poll this. A short shared-cache lifetime lets a CDN or proxy absorb thousands of polls,
  // must-revalidate turns every later poll into a cheap conditional request (304), and a stale
  // copy can never be served for long: the signed `expires` is the real freeze protection.
  const indexCache = `public, max-age=${ctx.indexMaxAgeSeconds}, must-revalidate`

  r.get('/v1/index.yaml', async (request, reply) => {
    let idx = ctx.catalogue.index
    if (idx === undefined) return await refuse(reply, new ImgdistError('NOT_FOUND', 'no index has been published yet'))
    const wait = preferredWait(request.headers.prefer)
    // Hold only a client that already has the current index: anyone else needs it now.
    if (wait !== undefined && wait > 0 && etagMatches(request.headers['if-none-match'], idx.etag) && ctx.watch.canHold()) {
      const applied = Math.min(wait, ctx.watch.maxWaitSeconds)
      const gone = new AbortController()
      // the response's 'close' before we answer means the client hung up (the request's fires at once for a GET)
      const onClose = (): void => { gone.abort() }
      reply.raw.once('close', onClose)
      const end = await ctx.watch.wait(applied * 1000, gone.signal)
      reply.raw.off('close', onClose)
      if (end === 'closing') {
        return await refuse(reply.header('Retry-After', '1'), new ImgdistError('SHUTTING_DOWN', 'the index server is restarting; poll again'))
      }
      reply.header('Preference-Applied', `wait=${applied}`)
      idx = ctx.catalogue.index ?? idx
    }
    return sendDocument(request, reply, idx, indexCache)
  })

  r.get('/v1/root.yaml', async (request, reply) => sendDocument(request, reply, ctx.catalogue.root, indexCache))

  r.get('/v1/root/:file', {
    schema: { params: Type.Object({ file: Type.String({ pattern: '^[1-9][0-9]{0,15}\\.yaml$' }) }) }
  }, async (request, reply) => {
    const version = Number(request.params.file.replace(/\.yaml$/, ''))
    const doc = ctx.catalogue.rootVersion(version)
    if (doc === undefined) return await refuse(reply, new ImgdistError('NOT_FOUND', `no root version ${version}`))
    // A root version never changes once published.
    return sendDocument(request, reply, doc, 'public, max-age=86400, immutable')
  })

  const rateLimit = { max: ctx.rateLimit.publishMax, timeWindow: ctx.rateLimit.windowMs }

  const publish = (kind: 'index' | 'root') => async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const body = request.body
    try {
      if (!Buffer.isBuffer(body)) {
        throw new ImgdistError('UNSUPPORTED_MEDIA_TYPE', `send the signed ${kind}.yaml as ${YAML_TYPES.join(', ')}`)
      }
      const now = ctx.now()
      request.log.debug({ document: kind, bytes: body.byteLength }, `checking the uploaded ${kind}`)
      const stored = kind === 'index' ? await ctx.catalogue.publishIndex(body, now) : await ctx.catalogue.publishRoot(body, now)
      ctx.metrics.publishes.inc({ document: kind, result: 'accepted', code: '' })
      request.log.info({ document: kind, version: stored.version }, `${kind} v${stored.version} published`)
      if (kind === 'index') ctx.resync()
      return await reply.code(200).send({ accepted: true, document: kind, version: stored.version, etag: stored.etag })
    } catch (err) {
      const e = toImgdistError(err)
      if (e.code === 'INTERNAL' || e.code === 'IO_ERROR') throw err
      ctx.metrics.publishes.inc({ document: kind, result: 'refused', code: e.code })
      request.log.warn({ document: kind, code: e.code, reason: e.message }, `${kind} publish refused`)
      return await refuse(reply, e)
    }
  }

  r.put('/v1/index.yaml', { bodyLimit: MAX_INDEX_BYTES, config: { rateLimit, publish: 'index' } }, publish('index'))
  r.put('/v1/root.yaml', { bodyLimit: MAX_ROOT_BYTES, config: { rateLimit, publish: 'root' } }, publish('root'))
}
