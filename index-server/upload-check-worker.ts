import { parentPort } from 'node:worker_threads'
import { ImgdistError } from '../lib/errors.js'
import { checkUpload, type CheckedUpload, type UploadCheck } from './upload-check.js'

/**
 * Worker thread of upload-checker.ts: checks one uploaded document at a time, so that a body
 * that costs seconds of CPU (or the heap) costs them here, not on the server's event loop.
 */

export type FromCheckWorker = { ready: true } | { result: CheckedUpload } | { error: { code: string, message: string } }

const port = parentPort
if (port === null) throw new Error('upload-check-worker must run as a worker thread')

port.on('message', (c: UploadCheck) => {
  let reply: FromCheckWorker
  try {
    reply = { result: checkUpload(c) }
  } catch (err) {
    reply = { error: err instanceof ImgdistError ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: (err as Error)?.message ?? String(err) } }
  }
  port.postMessage(reply)
})
// Loading the modules above is most of a start; the deadline of the first check begins after it.
port.postMessage({ ready: true } satisfies FromCheckWorker)
