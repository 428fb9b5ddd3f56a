import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

/**
 * Worker side of sha1-checker.ts: the sha1 of each piece it is sent, compared with the
 * torrent's. A piece in a SharedArrayBuffer (buffer-pool.ts) is read where it lies; any other
 * arrives as a copy.
 */

export interface ToSha1Worker { id: number, piece: Uint8Array, want: Uint8Array }
export interface FromSha1Worker { id: number, ok: boolean }

const port = parentPort
if (port === null) throw new Error('sha1-worker must run as a worker thread')

port.on('message', (m: ToSha1Worker) => {
  const got = createHash('sha1').update(m.piece).digest()
  port.postMessage({ id: m.id, ok: got.equals(m.want) } satisfies FromSha1Worker)
})
