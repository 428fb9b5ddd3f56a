import { stat } from 'node:fs/promises'
import { ImgdistError } from '../lib/errors.js'

/**
 * What identified an image's file on disk when its size and sha512 passed: a retry of a failed
 * registration registers the file without reading it again if it is still that file. The cache
 * never writes to a verified file (pieces are written once, before), so a change of any of these
 * means someone else did; a target's hard link into the cache changes none of them (ctime would
 * change, so it is not kept).
 */
export interface VerifiedFile {
  path: string
  /** the signed sha512 it matched: a record's entry can only change with its sha512 unchanged, checked all the same */
  sha512: string
  size: number
  mtimeMs: number
  ino: number
  dev: number
}

/** The file's identity now; undefined when there is no such file (other stat errors throw IO_ERROR). */
export async function identify (path: string): Promise<Omit<VerifiedFile, 'sha512'> | undefined> {
  try {
    const s = await stat(path)
    return { path, size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, dev: s.dev }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw new ImgdistError('IO_ERROR', `cannot stat ${path}: ${(err as Error).message}`, { cause: err })
  }
}

export function sameFile (verified: VerifiedFile, now: Omit<VerifiedFile, 'sha512'>): boolean {
  return verified.path === now.path && verified.size === now.size && verified.mtimeMs === now.mtimeMs &&
    verified.ino === now.ino && verified.dev === now.dev
}
