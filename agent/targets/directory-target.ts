import { randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ImgdistError } from '../../lib/errors.js'
import { TargetError, type RetireAction, type Target, type TargetImage } from './target.js'

/**
 * The embedded default target: `<dir>/<id>.img` plus `<id>.json` (its catalogue metadata), for
 * hypervisors without OpenStack. Both appear by rename, sidecar last, so a reader that sees the
 * sidecar sees a complete, verified image; a crash leaves only `.tmp-*` files, cleaned at start.
 */

export interface Sidecar {
  imgdist: 1
  catalogue: string
  catalogueVersion: number
  id: string
  name: string
  version: string
  sha512: string
  size: number
  diskFormat: string
  containerFormat: string
  arch: string
  os: string
  minDisk: number
  minRam: number
  properties: Record<string, string>
  endorsers: string[]
  verifiedAt: string
  retired?: { at: string, action: RetireAction }
}

export interface DirectoryTargetConfig { name: string, type: 'directory', path: string }

export function sidecarOf (img: TargetImage, verifiedAt: Date): Sidecar {
  const e = img.entry
  return {
    imgdist: 1, catalogue: img.catalogue, catalogueVersion: img.indexVersion, id: e.id, name: e.name, version: e.version,
    sha512: e.sha512, size: e.size, diskFormat: e.diskFormat, containerFormat: e.containerFormat, arch: e.arch, os: e.os,
    minDisk: e.minDisk, minRam: e.minRam, properties: e.properties, endorsers: img.endorsers, verifiedAt: verifiedAt.toISOString()
  }
}

async function writeAtomic (path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`
  await writeFile(tmp, data, { mode: 0o644 })
  await rename(tmp, path)
}

async function writeSidecar (path: string, side: Sidecar): Promise<void> {
  await writeAtomic(path, JSON.stringify(side, null, 2) + '\n')
}

/** Where `deactivate` and `hide` move an image: out of the way of anything globbing *.img. */
function retiredPath (f: { img: string }): string { return `${f.img}.retired` }

async function readSidecar (path: string): Promise<Sidecar | undefined> {
  try { return JSON.parse(await readFile(path, 'utf8')) as Sidecar } catch { return undefined }
}

/**
 * What to do about a directory the agent may not write. The unit's ProtectSystem=strict leaves only
 * /var/lib/imgdist writable, which shows as EROFS on a file system that is not read-only at all.
 */
function unwritableHint (err: unknown, dir: string): string | undefined {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EROFS') return ` (read-only here; under systemd, add ReadWritePaths=${dir} to the agent's unit: docs/agent.md, "Install")`
  if (code === 'EACCES' || code === 'EPERM') return ` (the agent's user may not write there; under systemd that is the imgdist user: chown it or pick another path)`
  return undefined
}

export function createDirectoryTarget (cfg: DirectoryTargetConfig): Target {
  const dir = cfg.path
  const files = (id: string): { img: string, json: string } => ({ img: join(dir, `${id}.img`), json: join(dir, `${id}.json`) })
  // Like the Glance target's: the last failure and the last success, so that the operator view
  // shows whether a fix (a chown, a ReadWritePaths=) has taken.
  let lastError: { code: string, message: string, at: string } | undefined
  let lastOkAt: string | undefined
  let lastImage: string | undefined
  const wrap = (what: string, err: unknown): TargetError => {
    const hint = unwritableHint(err, dir)
    const e = new TargetError(hint !== undefined ? 'TARGET_UNWRITABLE' : 'IO_ERROR',
      `directory target ${cfg.name}: ${what}: ${(err as Error).message}${hint ?? ''}`, { retryable: true, cause: err })
    lastError = { code: e.code, message: e.message, at: new Date().toISOString() }
    return e
  }
  const ok = (): void => { lastOkAt = new Date().toISOString() }

  return {
    name: cfg.name,
    type: 'directory',

    async find (img) {
      const f = files(img.entry.id)
      const side = await readSidecar(f.json)
      if (side === undefined || side.sha512 !== img.entry.sha512 || side.catalogue !== img.catalogue) return undefined
      if (side.retired === undefined) return { ref: f.img, adopted: true }
      // Retired here (moved aside) and listed again: moved back, as trusted as an adopted
      // sidecar is, once it still has the entry's size. Then nothing needs downloading.
      if (img.retiredRef !== retiredPath(f) || (await stat(img.retiredRef).catch(() => undefined))?.size !== img.entry.size) return undefined
      try {
        await rename(img.retiredRef, f.img)
        await writeSidecar(f.json, sidecarOf(img, new Date(side.verifiedAt)))
      } catch (err) {
        throw wrap(`cannot restore ${f.img}`, err)
      }
      ok()
      lastImage = img.entry.id
      return { ref: f.img, adopted: false }
    },

    async register (img) {
      if (img.filePath === undefined) throw new ImgdistError('INTERNAL', 'register() needs the verified file')
      const f = files(img.entry.id)
      const tmp = join(dir, `.tmp-${img.entry.id}-${randomBytes(4).toString('hex')}.img`)
      try {
        await mkdir(dir, { recursive: true })
        // A hardlink shares the cache's inode: cheap, and the cache never writes to a finished file.
        try { await link(img.filePath, tmp) } catch { await copyFile(img.filePath, tmp) }
        const before = await readSidecar(f.json)
        await rm(f.json, { force: true })
        await rename(tmp, f.img)
        await writeSidecar(f.json, sidecarOf(img, new Date()))
        // what this target retired of the same id is superseded by this registration
        if (before?.retired !== undefined && before.catalogue === img.catalogue) await rm(retiredPath(f), { force: true })
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {})
        throw wrap(`cannot write ${f.img}`, err)
      }
      ok()
      lastImage = img.entry.id
      return { ref: f.img, adopted: false }
    },

    // The sidecar only: the image file is the same bytes, and keeps its inode and verifiedAt.
    async refresh (img, reg) {
      const f = files(img.entry.id)
      if (reg.ref !== f.img) return
      const side = await readSidecar(f.json)
      if (side === undefined || side.sha512 !== img.entry.sha512 || side.catalogue !== img.catalogue || side.retired !== undefined) return
      try {
        await writeSidecar(f.json, sidecarOf(img, new Date(side.verifiedAt)))
      } catch (err) {
        throw wrap(`cannot rewrite ${f.json}`, err)
      }
      ok()
    },

    async retire (img, reg, action) {
      const f = files(img.entry.id)
      if (reg.ref !== f.img) return // not ours: never touch what this target did not register
      const side = await readSidecar(f.json)
      if (side === undefined || side.sha512 !== img.entry.sha512) return
      try {
        if (action === 'keep') return
        if (action === 'delete') {
          await rm(f.json, { force: true })
          await rm(f.img, { force: true })
          return
        }
        // deactivate / hide: out of the way of anything globbing *.img, but recoverable.
        await rename(f.img, retiredPath(f)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
        await writeSidecar(f.json, { ...side, retired: { at: new Date().toISOString(), action } })
        return { ref: retiredPath(f) }
      } catch (err) {
        throw wrap(`cannot retire ${f.img}`, err)
      }
    },

    // Also proves the directory writable, so that a sandbox or ownership mistake shows in
    // `imgdist-agent status` at start-up, not only after the first multi-GB download.
    async recover () {
      const probe = join(dir, `.tmp-probe-${randomBytes(4).toString('hex')}`)
      try {
        await mkdir(dir, { recursive: true })
        await writeFile(probe, '')
      } catch (err) {
        throw wrap(`cannot write in ${dir}`, err)
      }
      await rm(probe, { force: true })
      ok()
      const names = await readdir(dir)
      await Promise.all(names.filter((n) => n.startsWith('.tmp-') || /\.tmp-[0-9a-f]{8}$/.test(n)).map(async (n) => { await rm(join(dir, n), { force: true }) }))
    },

    status: () => ({ path: dir, lastOkAt, lastError, ...(lastImage !== undefined ? { lastImage } : {}) }),

    async close () {}
  }
}
