import { createHash } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'

/**
 * Worker side of prefix-hasher.ts: sha512 of the file's bytes from 0 up to the offset the
 * session says is verified and on disk, read on this thread so that the download's event loop
 * never waits for it.
 */

export type ToHashWorker = { upTo: number } | { stop: true }
export type FromHashWorker = { digest: string } | { error: string }

const { path, length } = workerData as { path: string, length: number }
const port = parentPort
if (port === null) throw new Error('prefix-hash-worker must run as a worker thread')

const hash = createHash('sha512')
// 128 KiB, not a piece: a buffer that stays in the core's L2 cache makes the copy out of the page
// cache cheaper and the hash reads it from there. Reading and hashing a cached 512 MiB file took
// 0.23 s of system time in 1 MiB steps against 0.05–0.09 s in 64–128 KiB steps, and 0.95 against
// 0.80 s in all (session 30, /tmp microbenchmark on the bench VM; reading into a 1 MiB buffer in
// 128 KiB steps cost the same as 1 MiB steps, so it is the buffer's size, not the call's).
const buf = Buffer.allocUnsafe(128 * 1024)
let pos = 0

port.on('message', (m: ToHashWorker) => {
  if ('stop' in m) { port.close(); return }
  // Opened per step, not held: a terminated worker cannot close a descriptor it keeps open.
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    while (pos < m.upTo) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, m.upTo - pos), pos)
      if (n <= 0) throw new Error(`short read at ${pos} of ${path}`)
      hash.update(buf.subarray(0, n))
      pos += n
    }
    closeSync(fd)
    fd = undefined
    if (pos >= length) { port.postMessage({ digest: hash.digest('hex') } satisfies FromHashWorker); port.close() }
  } catch (err) {
    if (fd !== undefined) closeSync(fd)
    port.postMessage({ error: (err as Error).message } satisfies FromHashWorker)
    port.close()
  }
})
