import { mkdir, readdir, readFile, rename, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ImgdistError } from '../lib/errors.js'
import { exists, fsyncDir, writeFileAtomic } from './atomic-file.js'
import type { DataPaths } from './data-dir.js'

/**
 * `imgdist-index init --force`: a new trusted root replaces the whole catalogue state, not just
 * root/1.yaml. The old root chain, index.yaml and the verification markers are moved (never
 * deleted) into DATA/replaced/<time>/, so that neither a root of the old catalogue nor its index
 * outlives it, and no marker vouches for a file against the new catalogue's entries (a file under
 * the same id is hashed again). Images and torrents stay: they are only used when the new index
 * lists them, after that check.
 *
 * Several renames cannot be one atomic step, so a journal is: the new root is staged first, then
 * DATA/reinit.json is written (the commit point), then the renames run. A crash before the journal
 * leaves the old state (the staged copy is removed at the next start); after it, the next start or
 * init finishes the renames, so a crash leaves the old catalogue or the new one, never a mix.
 */

const JOURNAL = 'reinit.json'
const STAGED_PREFIX = '.reinit-'
const DIR_MODE = 0o750

interface Journal { staged: string, backup: string }

/** Moves the current catalogue state aside and installs `bytes` as root/<version>.yaml. Returns the backup dir. */
export async function replaceCatalogue (paths: DataPaths, bytes: Buffer, version: number, now: Date): Promise<string> {
  await finishReinit(paths)
  const stamp = now.toISOString().replace(/[:.]/g, '-')
  const staged = `${STAGED_PREFIX}${stamp}`
  const backup = await freeName(join(paths.dir, 'replaced'), stamp)
  await mkdir(join(paths.dir, staged), { mode: DIR_MODE })
  await writeFileAtomic(join(paths.dir, staged, `${version}.yaml`), bytes)
  await mkdir(join(paths.dir, 'replaced'), { recursive: true, mode: DIR_MODE })
  await mkdir(join(paths.dir, backup), { mode: DIR_MODE })
  await fsyncDir(join(paths.dir, 'replaced'))
  await fsyncDir(paths.dir)
  const journal: Journal = { staged, backup }
  await writeFileAtomic(join(paths.dir, JOURNAL), JSON.stringify(journal) + '\n')
  await rollForward(paths, journal)
  return join(paths.dir, backup)
}

/** Completes a replacement a crash interrupted after its commit point; drops one interrupted before it. */
export async function finishReinit (paths: DataPaths): Promise<void> {
  let raw: string | undefined
  try { raw = await readFile(join(paths.dir, JOURNAL), 'utf8') } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, join(paths.dir, JOURNAL))
  }
  if (raw !== undefined) {
    await rollForward(paths, parseJournal(raw, join(paths.dir, JOURNAL)))
    return
  }
  let names: string[] = []
  try { names = await readdir(paths.dir) } catch {}
  for (const n of names.filter((n) => n.startsWith(STAGED_PREFIX))) await rm(join(paths.dir, n), { recursive: true, force: true })
}

async function rollForward (paths: DataPaths, j: Journal): Promise<void> {
  const staged = join(paths.dir, j.staged)
  const backup = join(paths.dir, j.backup)
  // While the staged root exists, everything in DATA is still the old catalogue's.
  if (await exists(staged)) {
    for (const [from, name] of [[paths.rootDir, 'root'], [paths.indexFile, 'index.yaml'], [paths.verifiedDir, 'verified']] as const) {
      await moveAside(from, join(backup, name))
    }
    await fsyncDir(backup)
    await rename(staged, paths.rootDir).catch((err: unknown) => { throw ioError(err, paths.rootDir) })
    await mkdir(paths.verifiedDir, { recursive: true, mode: DIR_MODE })
    await fsyncDir(paths.dir)
  }
  await rm(join(paths.dir, JOURNAL), { force: true })
  await fsyncDir(paths.dir)
}

async function moveAside (from: string, to: string): Promise<void> {
  if (!(await exists(from))) return
  if (await exists(to)) {
    // Already moved before a crash; what is here again is an empty dir made by ensureDataDirs.
    await rmdir(from).catch((err: unknown) => { throw ioError(err, from) })
    return
  }
  await rename(from, to).catch((err: unknown) => { throw ioError(err, from) })
}

async function freeName (dir: string, stamp: string): Promise<string> {
  for (let i = 0; ; i++) {
    const name = i === 0 ? stamp : `${stamp}-${i}`
    if (!(await exists(join(dir, name)))) return join('replaced', name)
  }
}

function parseJournal (raw: string, file: string): Journal {
  let j: unknown
  try { j = JSON.parse(raw) } catch { j = undefined }
  const ok = typeof j === 'object' && j !== null &&
    typeof (j as Journal).staged === 'string' && (j as Journal).staged.startsWith(STAGED_PREFIX) && !(j as Journal).staged.includes('/') &&
    typeof (j as Journal).backup === 'string' && /^replaced\/[\w-]+$/.test((j as Journal).backup)
  if (!ok) throw new ImgdistError('DATA_CORRUPT', `${file}: not a journal of imgdist-index init --force; finish by hand or remove it`)
  return j as Journal
}

function ioError (err: unknown, path: string): ImgdistError {
  return new ImgdistError('IO_ERROR', `${path}: ${(err as Error).message}`, { cause: err })
}
