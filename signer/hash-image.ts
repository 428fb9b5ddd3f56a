import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'
import { ImageHasher } from '../lib/image-hasher.js'
import { fsError } from './files.js'
import type { FromWorker, ToWorker } from './piece-worker.js'

/**
 * One streaming pass over an image: sha512, size and the torrent's sha1 piece hashes.
 *
 * With `threads: 2` sha512 runs on the main thread while a worker hashes the pieces, which
 * brings the pass close to `sha512sum` speed on two cores (sha512 + sha1 in series is about
 * 1.5x slower; see bench/hash-speed.md). `threads: 1` uses lib/image-hasher.ts as is. A fixed
 * pool of chunk buffers circulates between reader and worker, so memory stays at a few MiB
 * whatever the image size, and the next read is in flight while the current chunk is hashed.
 */

export interface HashResult { sha512: string, size: number, pieces: Uint8Array }
export interface HashOptions { pieceLength: number, threads: 1 | 2, onProgress?: (bytes: number) => void }

const CHUNK = 4 * 1024 * 1024
const POOL = 6

export async function hashImageFile (path: string, opts: HashOptions): Promise<HashResult> {
  let fh
  try { fh = await open(path, 'r') } catch (err) { throw fsError(err, path) }
  try {
    return opts.threads === 2 ? await hashParallel(fh, path, opts) : await hashSerial(fh, path, opts)
  } finally {
    await fh.close()
  }
}

type Handle = Awaited<ReturnType<typeof open>>

/** Reads the next chunk into `buf`; a short read is fine, zero means end of file. */
async function readInto (fh: Handle, path: string, buf: ArrayBuffer, position: number): Promise<number> {
  try {
    const { bytesRead } = await fh.read(new Uint8Array(buf), 0, buf.byteLength, position)
    return bytesRead
  } catch (err) { throw fsError(err, path) }
}

async function hashSerial (fh: Handle, path: string, opts: HashOptions): Promise<HashResult> {
  const hasher = new ImageHasher(opts.pieceLength)
  const bufs = [new ArrayBuffer(CHUNK), new ArrayBuffer(CHUNK)]
  let position = 0
  let turn = 0
  let pending = readInto(fh, path, bufs[0] as ArrayBuffer, 0)
  for (;;) {
    const n = await pending
    if (n === 0) break
    const cur = bufs[turn] as ArrayBuffer
    position += n
    turn ^= 1
    pending = readInto(fh, path, bufs[turn] as ArrayBuffer, position)
    hasher.update(new Uint8Array(cur, 0, n))
    opts.onProgress?.(position)
  }
  return hasher.digest()
}

async function hashParallel (fh: Handle, path: string, opts: HashOptions): Promise<HashResult> {
  const worker = new Worker(new URL('./piece-worker.js', import.meta.url), { workerData: { pieceLength: opts.pieceLength } })
  const free: ArrayBuffer[] = Array.from({ length: POOL }, () => new ArrayBuffer(CHUNK))
  let wake: (() => void) | undefined
  let failed: Error | undefined
  let resolvePieces: (p: Uint8Array) => void = () => {}
  const pieces = new Promise<Uint8Array>((resolve) => { resolvePieces = resolve })
  const fail = (err: Error): void => { failed ??= err; wake?.() }
  worker.on('message', (m: FromWorker) => {
    if ('pieces' in m) { resolvePieces(new Uint8Array(m.pieces)); return }
    free.push(m.buf)
    wake?.()
  })
  worker.on('error', fail)
  worker.on('exit', (code) => { if (code !== 0) fail(new Error(`piece hashing worker exited with code ${code}`)) })
  const takeFree = async (): Promise<ArrayBuffer> => {
    while (free.length === 0 && failed === undefined) await new Promise<void>((resolve) => { wake = resolve })
    if (failed !== undefined) throw failed
    return free.pop() as ArrayBuffer
  }
  try {
    const sha512 = createHash('sha512')
    let position = 0
    const readNext = async (at: number): Promise<{ buf: ArrayBuffer, n: number }> => {
      const buf = await takeFree()
      return { buf, n: await readInto(fh, path, buf, at) }
    }
    let pending = readNext(0)
    for (;;) {
      const { buf, n } = await pending
      if (n === 0) { free.push(buf); break }
      position += n
      pending = readNext(position)
      sha512.update(new Uint8Array(buf, 0, n))
      worker.postMessage({ buf, n } satisfies ToWorker, [buf])
      opts.onProgress?.(position)
    }
    worker.postMessage({ done: true } satisfies ToWorker)
    const result = await Promise.race([pieces, new Promise<never>((_resolve, reject) => {
      const check = (): void => { if (failed !== undefined) reject(failed); else wake = check }
      check()
    })])
    return { sha512: sha512.digest('hex'), size: position, pieces: result }
  } finally {
    await worker.terminate()
  }
}
