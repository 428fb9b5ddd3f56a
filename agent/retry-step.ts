import type { ImageRecord } from './state-store.js'
import { identify, isVerified } from './verified-file.js'

/**
 * Where a failed image's retry starts (DESIGN.md §4: "any step → failed → back to that step").
 * The step that matters is registering: a target down for hours is retried with backoff, and
 * going back through the download would read a multi-GB image again on every retry (after a
 * restart twice: the pieces' sha1 and the whole sha512). Registering again is safe only with
 * the very file that passed verification, which verified-file.ts tells; anything else is
 * verified again. A verification that found the bytes wrong deleted them, and a download or an
 * earlier step has nothing to skip: those start from `approved`, as before.
 */

export type RetryStep = 'verifying' | 'registering'

/** From the record alone (the reconciler's tick): the step to go back to, or undefined for the whole way from `approved`. */
export function retryStep (rec: ImageRecord): RetryStep | undefined {
  if (rec.failedStep === 'registering') {
    // a record from before the identity was kept cannot tell its file is the one that passed
    if (rec.verifiedFile === undefined) return undefined
    // Glance hashed what it was sent and found other bytes: ours may have gone bad since
    return rec.error?.code === 'GLANCE_HASH_MISMATCH' ? 'verifying' : 'registering'
  }
  if (rec.failedStep === 'verifying' && rec.error?.code !== 'HASH_MISMATCH') return 'verifying'
  return undefined
}

/**
 * After a restart, where an image that the last stop or crash interrupted mid-step resumes, by
 * the same rule as a retry: its verification (the download had ended), or its registration if
 * the file was verified; undefined for `approved` (a download carries on from its pieces there).
 */
export function interruptedStep (rec: ImageRecord): RetryStep | undefined {
  if (rec.state === 'verifying') return 'verifying'
  if (rec.state === 'registering' && rec.verifiedFile !== undefined) return 'registering'
  return undefined
}

/**
 * How the reason of a resumed image starts: a catalogue back in force, or a restart, is not a
 * retry (none is counted); nor is a registered image taken to a target added since.
 */
export function retryLabel (rec: ImageRecord): string {
  if (rec.state === 'registered') return 'not yet in every target (one was added to the config)'
  if (rec.state !== 'failed') return `resumed after a restart (was ${rec.state})`
  return rec.error?.code === 'CATALOGUE_EXPIRED' ? 'its catalogue is in force again' : `retry ${rec.retries}`
}

/**
 * With the file in view (the job, before it moves the record on): `registering` only
 * if the file is the one verified for this sha512; `verifying` if it is there but may differ;
 * undefined if it is gone (the whole way again).
 */
export async function resumeStep (rec: ImageRecord, from: RetryStep, path: string): Promise<{ step: RetryStep, why: string } | undefined> {
  const now = await identify(path)
  if (now === undefined) return undefined
  if (from === 'registering' && isVerified(rec, now)) {
    return { step: 'registering', why: 'the verified file is unchanged' }
  }
  const why = from === 'registering'
    ? 'the file changed since it was verified'
    : rec.state === 'failed' ? `after ${rec.error?.code ?? 'an error'} while ${rec.failedStep ?? 'verifying'}` : 'the file is read again'
  return { step: 'verifying', why }
}
