import { Type, type Static } from '@sinclair/typebox'
import { canonicalBytes } from './canonical-json.js'
import { TrustError } from './errors.js'
import { IMAGE_STATES } from './image-state.js'
import { keyIdOf, signBytes, verifyBytes, type KeyPair } from './keys.js'
import { ID_PATTERN, RFC3339_UTC, Signature } from './schema.js'
import { schemaProblems } from './validate.js'

/**
 * An agent's status report to the index server (`POST /v1/reports`), JSON, signed by the site's
 * own ed25519 key over the canonical JSON of `signed`, like the catalogue documents.
 */

export const MAX_REPORT_BYTES = 1024 * 1024
/** Clock skew tolerated between a site and the index server. */
export const REPORT_MAX_SKEW_MS = 5 * 60 * 1000

const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const Rate = Type.Number({ minimum: 0, maximum: 1e12 })
const ErrorInfo = Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 2048 }) }, { additionalProperties: false })

export const ReportImage = Type.Object({
  catalogue: Type.String({ pattern: ID_PATTERN }),
  id: Type.String({ pattern: ID_PATTERN }),
  version: Type.String({ maxLength: 128 }),
  state: Type.Union(IMAGE_STATES.map((s) => Type.Literal(s))),
  progress: Type.Number({ minimum: 0, maximum: 1 }),
  size: Count,
  bytesFromPeers: Count,
  bytesFromWebSeeds: Count,
  bytesUploaded: Count,
  downRate: Rate,
  upRate: Rate,
  peers: Count,
  seeding: Type.Boolean(),
  error: Type.Optional(ErrorInfo)
}, { additionalProperties: false })
export type ReportImage = Static<typeof ReportImage>

export const ReportSigned = Type.Object({
  type: Type.Literal('report'),
  site: Type.String({ pattern: ID_PATTERN }),
  sent: Type.String({ pattern: RFC3339_UTC }),
  agentVersion: Type.String({ maxLength: 64 }),
  catalogues: Type.Array(Type.Object({
    name: Type.String({ pattern: ID_PATTERN }),
    rootVersion: Count,
    indexVersion: Count,
    lastPoll: Type.Optional(Type.String({ pattern: RFC3339_UTC })),
    error: Type.Optional(ErrorInfo)
  }, { additionalProperties: false }), { maxItems: 64 }),
  images: Type.Array(ReportImage, { maxItems: 10_000 })
}, { additionalProperties: false })
export type ReportSigned = Static<typeof ReportSigned>

export const Report = Type.Object({
  signed: ReportSigned,
  signatures: Type.Array(Signature, { minItems: 1, maxItems: 4 })
}, { additionalProperties: false })
export type Report = Static<typeof Report>

export function signReport (signed: ReportSigned, key: KeyPair): Report {
  return { signed, signatures: [{ keyid: keyIdOf(key.publicKey), sig: signBytes(canonicalBytes(signed), key.secretKey) }] }
}

/**
 * Checks a report against the site's registered key. `lastSent` (the newest report already
 * accepted from that site) refuses replays; `now` bounds clock skew.
 */
export function verifyReport (value: unknown, sitePublicKey: Uint8Array, now: Date, lastSent?: string): Report {
  const problems = schemaProblems(Report, value)
  if (problems.length > 0) throw new TrustError('SCHEMA_INVALID', `report fails the schema: ${problems.join('; ')}`)
  const report = value as Report
  const keyid = keyIdOf(sitePublicKey)
  const sig = report.signatures.find((s) => s.keyid === keyid)
  if (sig === undefined) throw new TrustError('SIGNATURE_MISSING', `report is not signed by the key registered for site "${report.signed.site}"`)
  if (!verifyBytes(canonicalBytes(report.signed), sig.sig, sitePublicKey)) throw new TrustError('SIGNATURE_INVALID', 'report signature does not verify')
  const sent = Date.parse(report.signed.sent)
  if (Math.abs(sent - now.getTime()) > REPORT_MAX_SKEW_MS) throw new TrustError('EXPIRED', `report sent at ${report.signed.sent} is too far from the server's clock`)
  if (lastSent !== undefined && sent <= Date.parse(lastSent)) throw new TrustError('ROLLBACK', `report sent at ${report.signed.sent} is not newer than the last one (${lastSent})`)
  return report
}

