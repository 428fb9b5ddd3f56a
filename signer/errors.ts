import { ImgdistError, TrustError, type ImgdistCode } from '../lib/errors.js'

/**
 * Exit status is part of imgdist-sign's contract (DESIGN.md §5): 0 success, 1 a verification
 * failure or a refusal, 2 bad usage or unusable input. The error code travels with the exit
 * status so stderr still says what went wrong in the lib's own words.
 */
export type ExitStatus = 0 | 1 | 2

export class SignerError extends ImgdistError {
  readonly exitStatus: 1 | 2
  constructor (code: ImgdistCode, message: string, exitStatus: 1 | 2, options?: { cause?: unknown }) {
    super(code, message, options)
    this.exitStatus = exitStatus
  }
}

/**
 * A document the user asked us to edit or to trust (not the one being verified) that fails to
 * parse or check is a usage problem: the user handed us the wrong file.
 */
export function asInputError (err: unknown, what?: string): unknown {
  if (err instanceof TrustError) return new SignerError(err.code, what === undefined ? err.message : `${what}: ${err.message}`, 2, { cause: err })
  return err
}

export function exitStatusOf (err: unknown): 1 | 2 {
  if (err instanceof SignerError) return err.exitStatus
  if (err instanceof TrustError) return 1
  return 2
}
