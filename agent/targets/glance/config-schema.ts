import { Name } from '../../name-schema.js'
import { Type, type Static } from '@sinclair/typebox'

/**
 * The `glance` entry of the agent's `targets:` list. Credentials come from a named cloud in
 * clouds.yaml, from the `OS_*` variables of an openrc file, or inline (`auth`); inline fields
 * override the cloud's, so secrets can stay in clouds.yaml/secure.yaml while the agent config
 * picks the region or project.
 */

const Str = (description: string, maxLength = 1024): ReturnType<typeof Type.String> =>
  Type.String({ minLength: 1, maxLength, description })

export const GlanceInlineAuth = Type.Object({
  authUrl: Type.Optional(Type.String({ pattern: '^https?://[^\\s]{1,2040}$', description: 'Keystone URL, e.g. https://keystone.example.org:5000/v3' })),
  username: Type.Optional(Str('Keystone user name', 255)),
  userId: Type.Optional(Str('Keystone user id', 255)),
  password: Type.Optional(Str('password (prefer clouds.yaml/secure.yaml or OS_PASSWORD)', 4096)),
  userDomainName: Type.Optional(Str('domain of the user', 255)),
  userDomainId: Type.Optional(Str('domain id of the user', 255)),
  projectName: Type.Optional(Str('project to scope to', 255)),
  projectId: Type.Optional(Str('project id to scope to', 255)),
  projectDomainName: Type.Optional(Str('domain of the project', 255)),
  projectDomainId: Type.Optional(Str('domain id of the project', 255)),
  applicationCredentialId: Type.Optional(Str('application credential id', 255)),
  applicationCredentialName: Type.Optional(Str('application credential name (needs username or userId)', 255)),
  applicationCredentialSecret: Type.Optional(Str('application credential secret', 4096))
}, { additionalProperties: false })
export type GlanceInlineAuth = Static<typeof GlanceInlineAuth>

const VISIBILITIES = ['private', 'shared', 'community', 'public'] as const
export const Visibility = Type.Union(VISIBILITIES.map((v) => Type.Literal(v)), { description: 'private, shared, community or public' })
export type Visibility = Static<typeof Visibility>

export const GlanceTargetConfig = Type.Object({
  type: Type.Literal('glance'),
  // every target name's rule (agent/name-schema.ts); a lone glance target may leave it out
  name: Type.String({ pattern: Name.pattern, description: Name.description, default: 'glance' }),
  cloud: Type.Optional(Str('named cloud in clouds.yaml (default: $OS_CLOUD, else OS_* variables)', 255)),
  cloudsFile: Type.Optional(Str('explicit clouds.yaml path (default: the usual search path)', 4096)),
  auth: Type.Optional(GlanceInlineAuth),
  region: Type.Optional(Str('service catalog region', 255)),
  interface: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('internal'), Type.Literal('admin')],
    { description: 'public, internal or admin' })),
  endpoint: Type.Optional(Type.String({ pattern: '^https?://[^\\s]{1,2040}$', description: 'Glance URL, overrides the catalog' })),
  cacert: Type.Optional(Str('CA bundle (PEM file) for Keystone and Glance', 4096)),
  insecure: Type.Boolean({ default: false, description: 'skip TLS verification (testing only)' }),
  visibility: Type.Union(VISIBILITIES.map((v) => Type.Literal(v)), { default: 'private', description: 'set after the upload is verified' }),
  nameTemplate: Type.String({ minLength: 1, maxLength: 255, default: '{name}-{version}',
    description: 'image name; {name} {version} {id} {catalogue} {arch} {os} are replaced' }),
  tags: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { default: ['imgdist'], maxItems: 32, uniqueItems: true }),
  properties: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,255}$' }), Type.String({ maxLength: 255 }),
    { default: {}, maxProperties: 64, description: 'extra properties set on every image (site-specific)' }),
  adoptExisting: Type.Boolean({ default: true,
    description: 'adopt any active image of the project with the same os_hash_value and size instead of uploading' }),
  requestTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
  uploadTimeoutMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 3_600_000,
    description: 'how long Glance may take to answer once the upload is sent (it hashes and stores the image)' }),
  maxAttempts: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: 'attempts per request on 408/429/5xx/connection errors' }),
  retryBaseMs: Type.Integer({ minimum: 1, maximum: 60_000, default: 500 }),
  retryMaxMs: Type.Integer({ minimum: 1, maximum: 600_000, default: 15_000 }),
  maxUploadBytesPerSecond: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0,
    description: 'cap on upload bandwidth to Glance (0: none)' }),
  authFailureHoldMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 300_000,
    description: 'after Keystone refuses the credentials, fail fast for this long instead of asking again (account lock-out)' })
}, { additionalProperties: false })
export type GlanceTargetConfig = Static<typeof GlanceTargetConfig>
