/**
 * Every failure imgdist reports carries a stable `code`: logs, the status APIs, the CLIs' stderr
 * and the tests all match on it, so codes are never renamed once shipped.
 */

/** Codes raised when a signed document (root, index, report) is refused. */
export type TrustCode =
  | 'SIGNATURE_INVALID'
  | 'SIGNATURE_MISSING'
  | 'THRESHOLD_NOT_MET'
  | 'ROLLBACK'
  | 'EXPIRED'
  | 'SCHEMA_INVALID'
  | 'TOO_LARGE'
  | 'YAML_INVALID'
  | 'ALIAS_LIMIT'
  | 'TYPE_UNKNOWN'
  | 'DUPLICATE_ID'
  | 'UNSAFE_NAME'
  | 'NAME_MISMATCH'
  | 'VERSION_GAP'
  | 'VERSION_NOT_RAISED'
  | 'KEY_INVALID'

export type ImgdistCode =
  | TrustCode
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'IO_ERROR'
  | 'NOT_FOUND'
  | 'HASH_MISMATCH'
  | 'TORRENT_INVALID'
  | 'NETWORK_ERROR'
  | 'HTTP_ERROR'
  | 'INTERNAL'
  | (string & {}) // apps may add area codes (e.g. GLANCE_*, AUTH_FAILED) without editing lib

export class ImgdistError extends Error {
  readonly code: ImgdistCode
  constructor (code: ImgdistCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }

  toJSON (): { code: string, message: string } {
    return { code: this.code, message: this.message }
  }
}

/** A signed document was refused; the last good one stays in force. */
export class TrustError extends ImgdistError {
  declare readonly code: TrustCode
  constructor (code: TrustCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

/**
 * A config file or command line is wrong (bad usage, exit 2 in all three programs): a bad field,
 * or a file, key or name given as an argument that cannot be used. `problems` names every bad field.
 */
export class ConfigError extends ImgdistError {
  readonly problems: string[]
  constructor (message: string, problems: string[] = [], code: ImgdistCode = 'CONFIG_INVALID', options?: { cause?: unknown }) {
    super(code, problems.length > 0 ? `${message}: ${problems.join('; ')}` : message, options)
    this.problems = problems
  }
}

export class UsageError extends ImgdistError {
  constructor (message: string) { super('USAGE', message) }
}

/** Wraps anything thrown into an ImgdistError without losing the original as `cause`. */
export function toImgdistError (err: unknown, code: ImgdistCode = 'INTERNAL'): ImgdistError {
  if (err instanceof ImgdistError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new ImgdistError(code, message, { cause: err })
}

/**
 * The one stderr line each program prints for a failure: `program: CODE: message`. Anything that
 * is not an ImgdistError is a bug or an unforeseen failure and says INTERNAL, so every line
 * carries a code an operator can search for.
 */
export function errorLine (program: string, err: unknown): string {
  const e = toImgdistError(err)
  return `${program}: ${e.code}: ${e.message.replace(/\s*\n\s*/g, ' ').trim()}`
}
