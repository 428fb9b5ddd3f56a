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

interface Verifiable { entry: { sha512: string }, verifiedFile?: VerifiedFile }

/** Whether the file identified as `now` is the one that passed the record's signed sha512. */
export function isVerified (rec: Verifiable, now: Omit<VerifiedFile, 'sha512'>): boolean {
  const v = rec.verifiedFile
  return v !== undefined && v.sha512 === rec.entry.sha512 && v.path === now.path && v.size === now.size &&
    v.mtimeMs === now.mtimeMs && v.ino === now.ino && v.dev === now.dev
}

/** isVerified() for the file now at `path` (a stat, no read); false when there is none. */
export async function isVerifiedFile (rec: Verifiable, path: string): Promise<boolean> {
  const now = await identify(path)
  return now !== undefined && isVerified(rec, now)
}
