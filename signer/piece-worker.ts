import { parentPort, workerData } from 'node:worker_threads'
import { PieceHasher } from '../lib/piece-hasher.js'

/**
 * Worker thread: hashes torrent pieces while the main thread computes sha512 of the same bytes.
 * Each chunk buffer is handed back (transferred, not copied) so the reader can refill it.
 */

export type ToWorker = { buf: ArrayBuffer, n: number } | { done: true }
export type FromWorker = { buf: ArrayBuffer } | { pieces: ArrayBuffer }

const port = parentPort
if (port === null) throw new Error('piece-worker must run as a worker thread')
const hasher = new PieceHasher((workerData as { pieceLength: number }).pieceLength)

port.on('message', (m: ToWorker) => {
  if ('done' in m) {
    const d = hasher.digest()
    const pieces = new ArrayBuffer(d.byteLength)
    new Uint8Array(pieces).set(d)
    port.postMessage({ pieces } satisfies FromWorker, [pieces])
    port.close()
    return
  }
  hasher.update(new Uint8Array(m.buf, 0, m.n))
  port.postMessage({ buf: m.buf } satisfies FromWorker, [m.buf])
})
