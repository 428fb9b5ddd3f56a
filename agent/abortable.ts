import { ImgdistError } from '../lib/errors.js'

/**
 * `p`, or ABORTED as soon as `signal` fires (at once if it has): a job that is stopped does not
 * wait for a download or a hash to end. `p` itself runs on; its owner stops it.
 */
export async function abortable<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    if (signal.aborted) { reject(new ImgdistError('ABORTED', 'stopped')); return }
    const onAbort = (): void => { reject(new ImgdistError('ABORTED', 'stopped')) }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v) }, (err) => { signal.removeEventListener('abort', onAbort); reject(err) })
  })
}
