import { read, write } from 'node:fs'

/**
 * pread/pwrite on a descriptor through fs's callback API, for the piece store's per-piece and
 * per-block I/O. fs/promises' FileHandle.read/write allocate, per call, a promise, a result
 * object and an FSReqPromise with a stats array of its own; writing 512 MiB in
 * 128 KiB chunks that way caused 52 scavenges and 42–97 ms of user CPU per pass against 7 and
 * 11–40 ms through callbacks (session 29). In the agent those writes were about a quarter of
 * the bytes its JavaScript heap allocated during a download (sampling heap profile of a 4 GiB
 * bench:memory run), and the young generation grows to its maximum under that garbage.
 *
 * The caller owns the descriptor and must not close it while a call is in flight (PieceStore
 * waits for its I/O before closing).
 */

/** Writes `len` bytes of `buf` from `off` at file position `pos`, in pwrites of at most `chunk` bytes, one after the other. */
export function pwriteAll (fd: number, buf: Uint8Array, off: number, len: number, pos: number, chunk: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0
    const next = (): void => {
      if (done >= len) { resolve(); return }
      const n = Math.min(chunk, len - done)
      write(fd, buf, off + done, n, pos + done, (err, written) => {
        if (err !== null) { reject(err); return }
        if (written !== n) { reject(new Error(`short write at byte ${pos + done} (${written} of ${n})`)); return }
        done += n
        next()
      })
    }
    next()
  })
}

/** One pread of `len` bytes into `buf` at `off`; resolves to the bytes read (fewer at the end of the file). */
export function pread (fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, off, len, pos, (err, n) => { if (err !== null) reject(err); else resolve(n) })
  })
}
