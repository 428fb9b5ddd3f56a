import { randomBytes } from 'node:crypto'
import { open, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Crash-safe file replacement: the bytes go to a temp file in the same directory, are fsynced,
 * renamed over the target, and the directory is fsynced so the rename itself survives a power
 * cut. A reader (or a restart after `kill -9`) sees the old file or the new one, never a mix.
 */

const TEMP_MARK = '.tmp-'

export function tempPathFor (target: string): string {
  return join(dirname(target), `.${basename(target)}${TEMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`)
}

export async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

export async function writeFileAtomic (target: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(target)
  const fh = await open(tmp, 'wx', 0o644)
  try {
    await fh.writeFile(bytes)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  await commitTemp(tmp, target)
}

/** Renames a finished (already fsynced) temp file over `target` and makes the rename durable. */
export async function commitTemp (tmp: string, target: string): Promise<void> {
  try {
    await rename(tmp, target)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(dirname(target))
}

/** Temp files left by a process killed mid-write; removed at start-up. Returns how many. */
export async function removeStaleTemps (dir: string): Promise<number> {
  let names: string[]
  try { names = await readdir(dir) } catch { return 0 }
  const stale = names.filter((n) => n.startsWith('.') && n.includes(TEMP_MARK))
  await Promise.all(stale.map(async (n) => await rm(join(dir, n), { force: true })))
  return stale.length
}

/** Whether anything is at `path` (the data dir's files are ours: a stat that fails means no). */
export async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}
