import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { ConfigError } from '../../../lib/errors.js'
import { yamlProblemLine } from '../../../lib/document.js'
import type { GlanceInlineAuth, GlanceTargetConfig } from './config-schema.js'

/**
 * Resolves credentials the way OpenStack users keep them (openstacksdk/os-client-config rules):
 * a named cloud of clouds.yaml (+ secure.yaml), the OS_* variables of an openrc file, or inline
 * config, in that order of increasing precedence. Reads files; called once at start-up.
 */

export type Interface = 'public' | 'internal' | 'admin'

export type KeystoneCredentials =
  | { kind: 'password', userId?: string, username?: string, userDomainId?: string, userDomainName?: string, password: string,
    projectId?: string, projectName?: string, projectDomainId?: string, projectDomainName?: string }
  | { kind: 'application_credential', id?: string, name?: string, secret: string,
    userId?: string, username?: string, userDomainId?: string, userDomainName?: string }

export interface ResolvedCloud {
  authUrl: string
  credentials: KeystoneCredentials
  region?: string
  interface: Interface
  endpoint?: string
  cacert?: string
  insecure: boolean
  /** where the credentials came from, for operators: never contains a secret */
  source: string
}

export interface CloudsDeps { env: Record<string, string | undefined>, homeDir?: string, cwd?: string }

type Flat = Partial<Record<keyof GlanceInlineAuth, string>>

const CLOUD_AUTH_KEYS: Record<string, keyof GlanceInlineAuth> = {
  auth_url: 'authUrl',
  username: 'username',
  user_id: 'userId',
  password: 'password',
  user_domain_name: 'userDomainName',
  user_domain_id: 'userDomainId',
  project_name: 'projectName',
  tenant_name: 'projectName',
  project_id: 'projectId',
  tenant_id: 'projectId',
  project_domain_name: 'projectDomainName',
  project_domain_id: 'projectDomainId',
  application_credential_id: 'applicationCredentialId',
  application_credential_name: 'applicationCredentialName',
  application_credential_secret: 'applicationCredentialSecret'
}

const ENV_KEYS: Record<string, keyof GlanceInlineAuth> = Object.fromEntries(
  Object.entries(CLOUD_AUTH_KEYS).map(([k, v]) => [`OS_${k.toUpperCase()}`, v]))

/** The file OS_CLIENT_CONFIG_FILE / OS_CLIENT_SECURE_FILE names, if set. */
function explicitFile (name: 'clouds.yaml' | 'secure.yaml', deps: CloudsDeps): string | undefined {
  const v = name === 'clouds.yaml' ? deps.env.OS_CLIENT_CONFIG_FILE : deps.env.OS_CLIENT_SECURE_FILE
  return v === '' ? undefined : v
}

/** clouds.yaml search path of openstacksdk, first hit wins. */
export function cloudsSearchPath (name: 'clouds.yaml' | 'secure.yaml', deps: CloudsDeps): string[] {
  const explicit = explicitFile(name, deps)
  const home = deps.homeDir
  return [
    ...(explicit !== undefined ? [explicit] : []),
    join(deps.cwd ?? '.', name),
    ...(home !== undefined ? [join(home, '.config', 'openstack', name)] : []),
    join('/etc/openstack', name)
  ]
}

/**
 * A file of the search path that cannot be read is passed over, as openstacksdk passes over one
 * whose stat fails. Under the agent's systemd unit, ProtectHome=yes makes ~/.config/openstack
 * EACCES: failing there stopped an agent that was given its clouds.yaml elsewhere
 * (OS_CLIENT_CONFIG_FILE) from starting at all. A file named explicitly (OS_CLIENT_*_FILE,
 * `cloudsFile`) is skipped only if it does not exist; one that exists must be readable.
 */
const PASSED_OVER = new Set(['EACCES', 'EPERM', 'ENOTDIR'])

function readYaml (path: string, explicit: boolean): Record<string, unknown> | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (code === 'ENOENT' || (!explicit && PASSED_OVER.has(code))) return undefined
    throw new ConfigError(`cannot read ${path}`, [String((err as Error).message)])
  }
  try {
    const doc = parse(text, { schema: 'core', maxAliasCount: 16 }) as unknown
    return typeof doc === 'object' && doc !== null ? doc as Record<string, unknown> : {}
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML`, [yamlProblemLine(String((err as Error).message))])
  }
}

/** The first readable file of `name`'s search path; only the one named by OS_CLIENT_*_FILE must be readable. */
function firstYaml (name: 'clouds.yaml' | 'secure.yaml', deps: CloudsDeps): { path: string, doc: Record<string, unknown> } | undefined {
  const explicit = explicitFile(name, deps)
  for (const path of cloudsSearchPath(name, deps)) {
    const doc = readYaml(path, path === explicit)
    if (doc !== undefined) return { path, doc }
  }
  return undefined
}

function obj (v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {}
}

function str (v: unknown): string | undefined {
  if (typeof v === 'string' && v !== '') return v
  if (typeof v === 'number') return String(v)
  return undefined
}

function mergeDeep (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? mergeDeep(obj(out[k]), obj(v)) : v
  }
  return out
}

interface CloudSettings { auth: Flat, region?: string, interface?: string, endpoint?: string, cacert?: string, insecure?: boolean, authType?: string }

function loadCloud (name: string, config: GlanceTargetConfig, deps: CloudsDeps): { settings: CloudSettings, path: string } {
  const found = config.cloudsFile !== undefined
    ? (() => { const doc = readYaml(config.cloudsFile, true); return doc === undefined ? undefined : { path: config.cloudsFile, doc } })()
    : firstYaml('clouds.yaml', deps)
  if (found === undefined) {
    throw new ConfigError(`cloud "${name}" requested but no clouds.yaml found`, [`searched ${config.cloudsFile ?? cloudsSearchPath('clouds.yaml', deps).join(', ')} (missing or not readable)`])
  }
  let cloud = obj(obj(found.doc.clouds)[name])
  if (Object.keys(cloud).length === 0) throw new ConfigError(`cloud "${name}" is not defined in ${found.path}`)
  const secure = firstYaml('secure.yaml', deps)
  if (secure !== undefined) cloud = mergeDeep(cloud, obj(obj(secure.doc.clouds)[name]))
  const auth: Flat = {}
  for (const [k, v] of Object.entries(obj(cloud.auth))) {
    const key = CLOUD_AUTH_KEYS[k]
    const s = str(v)
    if (key !== undefined && s !== undefined) auth[key] = s
  }
  // openstacksdk: user_domain/project_domain default to domain_* / default_domain when unset
  const domainName = str(obj(cloud.auth).domain_name) ?? str(obj(cloud.auth).default_domain)
  const domainId = str(obj(cloud.auth).domain_id)
  auth.userDomainName ??= auth.userDomainId === undefined ? domainName : undefined
  auth.userDomainId ??= auth.userDomainName === undefined ? domainId : undefined
  auth.projectDomainName ??= auth.projectDomainId === undefined ? domainName : undefined
  auth.projectDomainId ??= auth.projectDomainName === undefined ? domainId : undefined
  const verify = cloud.verify
  return {
    path: found.path,
    settings: {
      auth,
      authType: str(cloud.auth_type),
      region: str(cloud.region_name),
      interface: str(cloud.interface) ?? str(cloud.endpoint_type),
      endpoint: str(cloud.image_endpoint_override),
      cacert: str(cloud.cacert),
      insecure: verify === false || verify === 'false' ? true : undefined
    }
  }
}

function fromEnv (env: Record<string, string | undefined>): CloudSettings {
  const auth: Flat = {}
  for (const [k, key] of Object.entries(ENV_KEYS)) {
    const v = str(env[k])
    if (v !== undefined && auth[key] === undefined) auth[key] = v
  }
  const domainName = str(env.OS_DOMAIN_NAME) ?? str(env.OS_DEFAULT_DOMAIN)
  auth.userDomainName ??= auth.userDomainId === undefined ? domainName : undefined
  auth.projectDomainName ??= auth.projectDomainId === undefined ? domainName : undefined
  return {
    auth,
    authType: str(env.OS_AUTH_TYPE),
    region: str(env.OS_REGION_NAME),
    interface: str(env.OS_INTERFACE) ?? str(env.OS_ENDPOINT_TYPE),
    endpoint: str(env.OS_IMAGE_URL),
    cacert: str(env.OS_CACERT),
    insecure: env.OS_INSECURE === 'true' || env.OS_INSECURE === '1' ? true : undefined
  }
}

function normaliseInterface (v: string | undefined): Interface | undefined {
  if (v === undefined) return undefined
  const s = v.replace(/URL$/, '')
  if (s === 'public' || s === 'internal' || s === 'admin') return s
  return undefined
}

/** Keystone URLs are given with or without /v3; the token API lives under /v3. */
export function keystoneV3Url (authUrl: string): string {
  const u = authUrl.replace(/\/+$/, '')
  return /\/v3$/.test(u) ? u : `${u}/v3`
}

export function resolveCloud (config: GlanceTargetConfig, deps: CloudsDeps): ResolvedCloud {
  const cloudName = config.cloud ?? str(deps.env.OS_CLOUD)
  let base: CloudSettings
  let source: string
  if (cloudName !== undefined) {
    const c = loadCloud(cloudName, config, deps)
    base = c.settings
    source = `clouds.yaml ${c.path} cloud "${cloudName}"`
  } else if (config.auth?.authUrl === undefined && str(deps.env.OS_AUTH_URL) !== undefined) {
    base = fromEnv(deps.env)
    source = 'OS_* environment variables'
  } else {
    base = { auth: {} }
    source = 'inline config'
  }
  const a: Flat = { ...base.auth }
  for (const [k, v] of Object.entries(config.auth ?? {})) if (v !== undefined) a[k as keyof GlanceInlineAuth] = v
  if (config.auth !== undefined && cloudName !== undefined) source += ' + inline auth'

  const problems: string[] = []
  if (a.authUrl === undefined) problems.push('auth_url: missing (clouds.yaml auth.auth_url, OS_AUTH_URL or auth.authUrl)')
  const iface = normaliseInterface(config.interface ?? base.interface)
  if ((config.interface ?? base.interface) !== undefined && iface === undefined) problems.push(`interface: "${base.interface ?? ''}" is not public, internal or admin`)
  const appCred = a.applicationCredentialSecret !== undefined || a.applicationCredentialId !== undefined ||
    a.applicationCredentialName !== undefined || /application.?credential/i.test(base.authType ?? '')
  let credentials: KeystoneCredentials | undefined
  if (appCred) {
    if (a.applicationCredentialSecret === undefined) problems.push('application_credential_secret: missing')
    if (a.applicationCredentialId === undefined && a.applicationCredentialName === undefined) problems.push('application_credential_id: missing (or application_credential_name with username/user_id)')
    if (a.applicationCredentialId === undefined && a.applicationCredentialName !== undefined && a.userId === undefined && a.username === undefined) {
      problems.push('username: an application credential given by name needs username or user_id')
    }
    credentials = {
      kind: 'application_credential',
      id: a.applicationCredentialId,
      name: a.applicationCredentialId === undefined ? a.applicationCredentialName : undefined,
      secret: a.applicationCredentialSecret ?? '',
      userId: a.userId,
      username: a.userId === undefined ? a.username : undefined,
      userDomainId: a.userDomainId,
      userDomainName: a.userDomainId === undefined ? (a.userDomainName ?? 'Default') : undefined
    }
  } else {
    if (a.password === undefined) problems.push('password: missing (clouds.yaml/secure.yaml auth.password, OS_PASSWORD or auth.password)')
    if (a.userId === undefined && a.username === undefined) problems.push('username: missing (or user_id)')
    if (a.projectId === undefined && a.projectName === undefined) problems.push('project_name: missing (or project_id): Glance needs a project-scoped token')
    credentials = {
      kind: 'password',
      password: a.password ?? '',
      userId: a.userId,
      username: a.userId === undefined ? a.username : undefined,
      userDomainId: a.userDomainId,
      userDomainName: a.userDomainId === undefined ? (a.userDomainName ?? 'Default') : undefined,
      projectId: a.projectId,
      projectName: a.projectId === undefined ? a.projectName : undefined,
      projectDomainId: a.projectDomainId,
      projectDomainName: a.projectDomainId === undefined ? (a.projectDomainName ?? 'Default') : undefined
    }
  }
  if (problems.length > 0) throw new ConfigError(`glance target "${config.name}": credentials from ${source} are incomplete`, problems)
  return {
    authUrl: keystoneV3Url(a.authUrl as string),
    credentials,
    region: config.region ?? base.region,
    interface: iface ?? 'public',
    endpoint: config.endpoint ?? base.endpoint,
    cacert: config.cacert ?? base.cacert,
    insecure: config.insecure || base.insecure === true,
    source
  }
}
