import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import type { Registration } from '../target.js'

/** The Glance target's public shapes: what it is built with, what it returns, what it shows. */

export interface GlanceTargetDeps {
  logger?: Logger
  /** alias of `logger` (the agent's TargetDeps name) */
  log?: Logger
  /** the process environment (OS_CLOUD, OS_CLIENT_CONFIG_FILE, OS_* of an openrc); only bin code reads process.env */
  env?: Record<string, string | undefined>
  homeDir?: string
  /** for tests (undici MockAgent); otherwise the target owns a keep-alive Agent */
  dispatcher?: Dispatcher
  /** where ./clouds.yaml is looked up; default: the working directory */
  cwd?: string
  /**
   * The agent's site name, set as `imgdist_site` on the images it creates. Clean-up after a crash
   * removes half-registered images of this site (and untagged ones, from before the tag) only,
   * so that two agents sharing a project never delete each other's upload in flight.
   */
  site?: string
}

export interface GlanceRegistration extends Registration {
  /** the Glance image id (same as ref) */
  imageId: string
  status: string
  visibility?: string
}

/** What the operator view shows for this target; never contains a secret. */
export interface GlanceTargetStatus {
  name: string
  type: 'glance'
  credentials: string
  authUrl: string
  endpoint?: string
  region?: string
  interface: string
  projectId?: string
  lastImageId?: string
  lastOkAt?: string
  lastError?: { code: string, message: string, retryable: boolean, imageId?: string, at: string }
}
