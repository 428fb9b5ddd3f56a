import type { FastifyReply } from 'fastify'
import { ImgdistError } from '../lib/errors.js'

/**
 * HTTP status of each refusal code. The body is always `{code, message}`, so a publisher's CLI
 * can print the reason and scripts can match on the stable code.
 *
 *   400  SCHEMA_INVALID YAML_INVALID ALIAS_LIMIT TYPE_UNKNOWN DUPLICATE_ID UNSAFE_NAME TORRENT_INVALID BAD_REQUEST
 *   403  SIGNATURE_INVALID SIGNATURE_MISSING THRESHOLD_NOT_MET SITE_UNKNOWN
 *   404  NOT_FOUND
 *   409  ROLLBACK VERSION_GAP VERSION_NOT_RAISED NAME_MISMATCH
 *   413  TOO_LARGE PARSE_LIMIT
 *   415  UNSUPPORTED_MEDIA_TYPE
 *   422  EXPIRED HASH_MISMATCH
 *   429  RATE_LIMITED
 *   503  SHUTTING_DOWN
 */
const STATUS: Record<string, number> = {
  SCHEMA_INVALID: 400,
  YAML_INVALID: 400,
  ALIAS_LIMIT: 400,
  TYPE_UNKNOWN: 400,
  DUPLICATE_ID: 400,
  UNSAFE_NAME: 400,
  TORRENT_INVALID: 400,
  KEY_INVALID: 400,
  BAD_REQUEST: 400,
  SIGNATURE_INVALID: 403,
  SIGNATURE_MISSING: 403,
  THRESHOLD_NOT_MET: 403,
  SITE_UNKNOWN: 403,
  NOT_FOUND: 404,
  ROLLBACK: 409,
  VERSION_GAP: 409,
  VERSION_NOT_RAISED: 409,
  NAME_MISMATCH: 409,
  TOO_LARGE: 413,
  PARSE_LIMIT: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  EXPIRED: 422,
  HASH_MISMATCH: 422,
  RATE_LIMITED: 429,
  SHUTTING_DOWN: 503
}

export function statusOf (code: string): number {
  return STATUS[code] ?? 500
}

export async function refuse (reply: FastifyReply, err: ImgdistError): Promise<FastifyReply> {
  return await reply.code(statusOf(err.code)).type('application/json; charset=utf-8').send({ code: err.code, message: err.message })
}

export function httpError (code: string, message: string): ImgdistError {
  return new ImgdistError(code, message)
}
