import { Type, type Static } from '@sinclair/typebox'

/**
 * The signed documents of DESIGN.md §3. Field names are fixed by the design; unknown fields are
 * refused so that a signer and a verifier can never disagree about what was signed.
 */

export const ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$'
export const HEX_SHA256 = '^[0-9a-f]{64}$'
export const HEX_SHA512 = '^[0-9a-f]{128}$'
export const HEX_SHA1 = '^[0-9a-f]{40}$'
export const RFC3339_UTC = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$'
const PUBKEY = '^ed25519:[A-Za-z0-9+/]{43}=$'
const SIG = '^[A-Za-z0-9+/]{86}==$'

const Timestamp = Type.String({ pattern: RFC3339_UTC, description: 'RFC 3339 UTC, e.g. 2026-01-31T12:00:00Z' })
const KeyId = Type.String({ pattern: HEX_SHA256, description: 'hex sha256 of the raw public key' })
const Version = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
const Text = (maxLength: number): ReturnType<typeof Type.String> => Type.String({ minLength: 1, maxLength })

export const Signature = Type.Object({
  keyid: KeyId,
  sig: Type.String({ pattern: SIG, description: 'base64 ed25519 signature' })
}, { additionalProperties: false })
export type Signature = Static<typeof Signature>

export const Role = Type.Object({
  keyids: Type.Array(KeyId, { minItems: 1, maxItems: 64, uniqueItems: true }),
  threshold: Type.Integer({ minimum: 1, maximum: 64 })
}, { additionalProperties: false })
export type Role = Static<typeof Role>

export const RootSigned = Type.Object({
  type: Type.Literal('root'),
  name: Type.String({ pattern: ID_PATTERN, description: 'catalogue name, lower-case [a-z0-9._-]' }),
  version: Version,
  expires: Timestamp,
  keys: Type.Record(Type.String({ pattern: HEX_SHA256 }), Type.String({ pattern: PUBKEY, description: 'ed25519:<base64>' }),
    { additionalProperties: false, maxProperties: 128 }),
  roles: Type.Object({ root: Role, index: Role }, { additionalProperties: false })
}, { additionalProperties: false })
export type RootSigned = Static<typeof RootSigned>

export const ImageEntry = Type.Object({
  id: Type.String({ pattern: ID_PATTERN, description: 'lower-case [a-z0-9._-], at most 128 characters' }),
  name: Text(255),
  version: Text(128),
  sha512: Type.String({ pattern: HEX_SHA512, description: '128 lower-case hex digits' }),
  size: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  infoHash: Type.String({ pattern: HEX_SHA1, description: '40 lower-case hex digits' }),
  torrent: Type.String({ pattern: '^[A-Za-z0-9._/-]{1,512}$', description: 'path relative to the index URL' }),
  webSeeds: Type.Optional(Type.Array(Type.String({ pattern: '^https?://[^\\s]{1,2040}$', description: 'http(s) URL' }), { maxItems: 16 })),
  diskFormat: Type.Union(['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'].map((f) => Type.Literal(f)),
    { description: 'a Glance disk_format' }),
  containerFormat: Type.Union(['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'].map((f) => Type.Literal(f)),
    { description: 'a Glance container_format' }),
  minDisk: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  minRam: Type.Integer({ minimum: 0, maximum: 100_000_000 }),
  arch: Text(32),
  os: Text(64),
  properties: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,255}$' }), Type.String({ maxLength: 65535 }),
    { additionalProperties: false, maxProperties: 128 }),
  expires: Type.Optional(Timestamp)
}, { additionalProperties: false })
export type ImageEntry = Static<typeof ImageEntry>

export const Revocation = Type.Object({
  id: Type.String({ pattern: ID_PATTERN }),
  reason: Text(1024),
  at: Timestamp
}, { additionalProperties: false })
export type Revocation = Static<typeof Revocation>

export const IndexSigned = Type.Object({
  type: Type.Literal('index'),
  name: Type.String({ pattern: ID_PATTERN }),
  version: Version,
  issued: Timestamp,
  expires: Timestamp,
  images: Type.Array(ImageEntry, { maxItems: 10_000 }),
  revoked: Type.Array(Revocation, { maxItems: 10_000 })
}, { additionalProperties: false })
export type IndexSigned = Static<typeof IndexSigned>

export const Envelope = Type.Object({
  signed: Type.Unknown(),
  signatures: Type.Array(Signature, { maxItems: 64 })
}, { additionalProperties: false })

export interface SignedDocument<T> { signed: T, signatures: Signature[] }
export type RootDocument = SignedDocument<RootSigned>
export type IndexDocument = SignedDocument<IndexSigned>
