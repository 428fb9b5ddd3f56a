import { ImgdistError, type ImgdistCode } from '../../lib/errors.js'
import type { ImageEntry } from '../../lib/schema.js'

/**
 * Where verified images go at a site. The agent drives every target through this interface;
 * `directory` (agent/targets/directory-target.ts) and `glance` (agent/targets/glance/) implement it.
 */

export interface TargetImage {
  catalogue: string
  indexVersion: number
  entry: ImageEntry
  /** key ids that signed the accepted index (the endorsers) */
  endorsers: string[]
  /** the verified file on local disk; only set for register() */
  filePath?: string
  /**
   * Where this target's own retirement of these bytes left the image (a hidden or deactivated
   * Glance image, a directory's `.img.retired`), when the catalogue lists it again: find() may
   * restore that one rather than have the bytes registered anew. Only ever a ref this target
   * returned for the same catalogue, id and sha512, kept on the image's record.
   */
  retiredRef?: string
  /**
   * refresh(), and find() with `retiredRef`: the entry property keys of the listing the image
   * shows now, so that those the new listing dropped are removed (and nothing the site or an
   * operator set is).
   */
  formerProperties?: string[]
  /**
   * refresh(), and find() with `retiredRef`: the target's `settings` the image was registered or
   * last refreshed under, when the line recorded them (an earlier agent did not record them): what
   * those settings wrote and the current ones do not is taken back.
   */
  formerSettings?: TargetSettings
}

/**
 * What a target's own config writes on every image it registers, as plain JSON: for Glance the
 * name template, properties, tags and visibility. Recorded on each registered line, so that a
 * reload or restart with other settings brings the images registered before up to date (Target.refresh).
 */
export type TargetSettings = Record<string, unknown>

export interface Registration {
  /** the target's own id: a Glance image id, or a file path for `directory` */
  ref: string
  /** true when an existing image was adopted instead of moving bytes */
  adopted: boolean
  /**
   * The target's settings this registration wrote, when it has any: a reload (reconfigure) may
   * change `Target.settings` while a registration is under way, and the line must record what
   * the image got, so that the next refresh brings it up to date.
   */
  settings?: TargetSettings
}

/**
 * What a target makes of its entry in a reloaded config (SIGHUP). Nothing changes until `apply()`,
 * so that the agent can refuse a reload as a whole when any part of it is bad.
 */
export interface TargetReconfiguration {
  /** the fields that differ and apply at once (Glance: the image settings) */
  changed: string[]
  /** the fields that differ and take effect only at the next start (credentials, endpoint, path) */
  restart: string[]
  apply: () => void
}

/** What a site does with a registered image once it is revoked, expired or no longer listed. */
export type RetireAction = 'deactivate' | 'hide' | 'delete' | 'keep'

export interface Target {
  readonly name: string
  readonly type: string
  /**
   * What this target's config writes on each image (TargetSettings); absent when nothing does.
   * A reload may replace it (reconfigure); each call reads it once, when it begins.
   */
  readonly settings?: TargetSettings
  /**
   * SIGHUP: this target's entry of the new config, validated (ConfigError naming the bad fields,
   * and nothing applied) and split into what applies at once and what needs a restart. Without
   * it, any change to the target's entry needs a restart.
   */
  reconfigure?: (config: unknown) => TargetReconfiguration
  /**
   * An image this target already holds with the same catalogue id and sha512, if any (adopt, don't
   * upload); with `retiredRef`, the image this target retired, restored if it still holds the bytes.
   */
  find: (img: TargetImage, signal?: AbortSignal) => Promise<Registration | undefined>
  /** Registers the verified file; must not make the image visible to users before it is checked. */
  register: (img: TargetImage, signal?: AbortSignal) => Promise<Registration>
  /** Applies the retire action (a target that moved the image says where, as `ref`); must never touch anything the target did not register itself. */
  retire: (img: TargetImage, reg: Registration, action: RetireAction, signal?: AbortSignal) => Promise<RetireResult | undefined | void>
  /**
   * The catalogue re-signed the same bytes with other metadata (version, name, properties,
   * endorsers), or the target's own `settings` changed since the image was registered: the image
   * this target registered (`reg`) is made to show `img`'s listing under the current settings.
   * Never moves bytes, and leaves alone an image imgdist did not register (an adopted one of
   * another tool). Applies the settings in force when it is called (read before its first
   * await: the caller records those). Without it, a target's images keep what they were
   * registered with.
   */
  refresh?: (img: TargetImage, reg: Registration, signal?: AbortSignal) => Promise<void>
  /** Start-up clean-up of what a crash left half-done (partial files, `queued` Glance images). */
  recover?: (signal?: AbortSignal) => Promise<void>
  /** What the operator view shows of the target itself (endpoint, credential source, last error); never a secret. */
  status?: () => object
  close: () => Promise<void>
}

/** A target step failed. `retryable` errors are retried with backoff; others wait for an operator. */
export class TargetError extends ImgdistError {
  readonly retryable: boolean
  constructor (code: ImgdistCode, message: string, opts: { retryable?: boolean, cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause })
    this.retryable = opts.retryable ?? false
  }
}

/** Where a retired image now is, when retiring moved it (a directory's `<id>.img.retired`). */
export interface RetireResult { ref: string }
