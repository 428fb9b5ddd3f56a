import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import { MAX_TORRENT_BYTES, parseTorrent } from '../lib/torrent-meta.js'
import { unsafeNameReason } from '../lib/trust.js'
import type { Swarm } from '../swarm/swarm.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import { abortable } from './abortable.js'
import { fetchBytes } from './http-fetch.js'
import type { Catalogue } from './catalogue.js'
import { resumeStep, retryLabel, type RetryStep } from './retry-step.js'
import type { ImageRecord, StateStore, TargetState } from './state-store.js'
import type { Registration, Target, TargetImage } from './targets/target.js'
import { identify } from './verified-file.js'
import { verifyImageFile } from './verifier.js'

/**
 * One image's way from `approved` to `registered`: torrent (checked against the signed info
 * hash), download, sha512, then each target; a retry starts at the step it goes back to
 * (retry-step.ts). Throws ImgdistError; the job runner (job-runner.ts) turns that into `failed`
 * with a retry.
 */

export interface PipelineDeps {
  swarm: Swarm
  store: StateStore
  targets: Target[]
  http: Dispatcher
  log: Logger
  dataDir: string
  /** called when the download phase ends (success or not), to free a download slot */
  onDownloadEnd: (rec: ImageRecord) => void
  /** the operator's pause: a torrent added after `pause` (its .torrent was still being fetched) starts paused */
  paused: () => boolean
  /** whether the image's catalogue is still in force (an accepted index and root, neither expired) */
  inForce: () => boolean
}

/**
 * The image's catalogue went out of force (its index or root expired) while the image was on its
 * way: an expired catalogue authorises no registration (DESIGN.md §3, freeze). Not a failure of
 * the image: it resumes, from the pieces it has, once a current index is accepted.
 */
export class CatalogueExpiredError extends ImgdistError {
  constructor (catalogue: string, options?: { cause?: unknown }) {
    super('CATALOGUE_EXPIRED', `stopped: catalogue ${catalogue} is no longer in force (its index or root expired); the data fetched so far is kept, and the image resumes when a current index is accepted`, options)
  }
}

export function targetImage (rec: ImageRecord, filePath?: string): TargetImage {
  return { catalogue: rec.catalogue, indexVersion: rec.indexVersion, entry: rec.entry, endorsers: rec.endorsers, ...(filePath !== undefined ? { filePath } : {}) }
}

/**
 * targetImage() for one target, with what that target's retirement left if the image was listed
 * again (StateStore.revive): where the retired image is, the settings it was registered under and
 * the entry properties it shows.
 */
function imageFor (rec: ImageRecord, target: Target, filePath?: string): TargetImage {
  const ts = rec.targets[target.name]
  const retiredRef = retiredRefOf(ts)
  if (retiredRef === undefined) return targetImage(rec, filePath)
  return {
    ...targetImage(rec, filePath),
    retiredRef,
    ...(ts?.settings !== undefined ? { formerSettings: ts.settings } : {}),
    ...(ts?.shownProperties !== undefined ? { formerProperties: ts.shownProperties } : {})
  }
}

/** Where this target's retirement left the image, while it has not registered it again (TargetState.retiredRef). */
function retiredRefOf (ts: TargetState | undefined): string | undefined {
  return ts?.state === 'retired' ? ts.ref : ts?.retiredRef
}

/**
 * A target's line of the record once it holds the image, with the settings it was registered
 * under: those the registration says it wrote, as a reload may have changed the target's since.
 */
function registered (reg: Registration, target: Target): TargetState {
  const settings = reg.settings ?? target.settings
  return { state: 'registered', ref: reg.ref, adopted: reg.adopted, at: new Date().toISOString(), ...(settings !== undefined ? { settings } : {}) }
}

/**
 * Runs one target step; on failure the target's own line of the record keeps the error (and the
 * target's object id, e.g. the Glance image concerned) for the operator view, then it rethrows.
 * Only ever for a target whose line is not `registered` (runPipeline's `todo`).
 */
async function targetStep<T> (rec: ImageRecord, target: Target, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    const e = toImgdistError(err)
    if (e.code !== 'ABORTED') {
      const prev = rec.targets[target.name]
      const errRef = (err as { imageId?: unknown }).imageId
      // A line that retired the image becomes `failed` like any other, but keeps where the retired
      // image is (the one to restore, imageFor) through failed attempts.
      const retiredRef = retiredRefOf(prev)
      const ref = typeof errRef === 'string' ? errRef : prev?.state === 'retired' ? undefined : prev?.ref
      rec.targets[target.name] = {
        state: 'failed',
        // one whose retired image may still be restored keeps the settings that image was
        // registered under and the entry properties it shows
        ...(retiredRef !== undefined && prev?.settings !== undefined ? { settings: prev.settings } : {}),
        ...(retiredRef !== undefined && prev?.shownProperties !== undefined ? { shownProperties: prev.shownProperties } : {}),
        ...(ref !== undefined ? { ref } : {}),
        ...(retiredRef !== undefined ? { retiredRef } : {}),
        ...(prev?.adopted !== undefined ? { adopted: prev.adopted } : {}),
        at: new Date().toISOString(),
        error: { code: e.code, message: e.message }
      }
    }
    throw err
  }
}

function torrentCachePath (dataDir: string, infoHash: string): string { return join(dataDir, 'torrents', `${infoHash}.torrent`) }

/** The .torrent bytes, from the local copy if this agent fetched them before, else from the index. */
export async function obtainTorrent (deps: Pick<PipelineDeps, 'http' | 'dataDir'>, rec: ImageRecord, cat: Catalogue | undefined, signal?: AbortSignal): Promise<{ bytes: Uint8Array, webSeeds: string[], name: string }> {
  const e = rec.entry
  const local = torrentCachePath(deps.dataDir, e.infoHash)
  let bytes: Uint8Array | undefined = await readFile(local).catch(() => undefined)
  if (bytes === undefined) {
    if (cat === undefined) throw new ImgdistError('NETWORK_ERROR', `${e.id}: no catalogue URL to fetch its torrent from`)
    const url = new URL(e.torrent, cat.baseUrl).toString()
    const res = await fetchBytes(deps.http, url, { maxBytes: MAX_TORRENT_BYTES, ...(signal !== undefined ? { signal } : {}) })
    if (res.status !== 200 || res.body === undefined) throw new ImgdistError('HTTP_ERROR', `GET ${url}: HTTP ${res.status}`)
    bytes = res.body
  }
  // The signed info hash is what makes an unsigned .torrent trustworthy: check before webtorrent sees it.
  const parsed = parseTorrent(bytes, { infoHash: e.infoHash, length: e.size })
  const unsafe = unsafeNameReason(parsed.name)
  if (unsafe !== undefined) throw new ImgdistError('TORRENT_INVALID', `${e.id}: torrent file name ${JSON.stringify(parsed.name)} ${unsafe}`)
  await mkdir(join(deps.dataDir, 'torrents'), { recursive: true })
  const tmp = `${local}.tmp`
  await writeFile(tmp, bytes)
  await rename(tmp, local)
  return { bytes, webSeeds: [...new Set([...parsed.webSeeds, ...(e.webSeeds ?? [])])], name: parsed.name }
}

export function filePathOf (swarm: Swarm, rec: ImageRecord, name: string): string {
  return join(swarm.downloadDir(rec.entry.infoHash), name)
}

/**
 * `retry`: the step to go back to rather than `approved`, for a `failed` image (retryStep()) or
 * one the last stop interrupted (interruptedStep()); the file decides at last (resumeStep()).
 */
export async function runPipeline (deps: PipelineDeps, rec: ImageRecord, cat: Catalogue | undefined, signal: AbortSignal,
  onHandle: (h: TorrentHandle) => void, retry?: RetryStep): Promise<void> {
  const { swarm, log } = deps
  const e = rec.entry
  // Every write checks that the job is still wanted and its record still the image's: a job
  // stopped for a new release must not put the superseded record back over the new one.
  const current = (): void => {
    if (signal.aborted || !deps.store.isCurrent(rec)) throw new ImgdistError('ABORTED', `${e.id}: stopped (no longer wanted, or replaced by a new release)`)
  }
  // Checked before anything that registers: a job can outlive its catalogue's expiry by up to a
  // reconciler tick, and a registration under an expired catalogue is what a freeze attack wants.
  const authorised = (): void => {
    current()
    if (!deps.inForce()) throw new CatalogueExpiredError(rec.catalogue)
  }
  const store = {
    transition: async (...a: Parameters<StateStore['transition']>): Promise<void> => { current(); await deps.store.transition(...a) },
    put: async (r: ImageRecord): Promise<void> => { current(); await deps.store.put(r) }
  }
  let downloadEnded = false
  const endDownload = (): void => { if (!downloadEnded) { downloadEnded = true; deps.onDownloadEnd(rec) } }
  // The whole file against the signed entry; what identifies the file is kept with the verdict,
  // for a retry of the registration to know the file unchanged (verified-file.ts).
  const verify = async (path: string, precomputed?: Promise<string>): Promise<void> => {
    try {
      await verifyImageFile(path, e, signal, precomputed)
    } catch (err) {
      if (err instanceof ImgdistError && err.code === 'HASH_MISMATCH') {
        // Pieces all passed sha1 yet the whole is wrong: the data cannot be trusted, start over.
        await swarm.remove(e.infoHash, true)
        rec.cached = false
        delete rec.verifiedFile
      }
      throw err
    }
    const file = await identify(path)
    if (file === undefined) throw new ImgdistError('IO_ERROR', `${path} went away as it was verified`)
    rec.verifiedFile = { ...file, sha512: e.sha512 }
    log.info({ image: e.id }, 'verified sha512 and size')
  }
  try {
    let torrent: Awaited<ReturnType<typeof obtainTorrent>> | undefined
    let from: RetryStep | undefined
    if (retry !== undefined) {
      // Decided, and the record out of `failed`, before anything else can fail: a failure from
      // here on is one of the step it went back to, which the job runner records as such.
      torrent = await obtainTorrent(deps, rec, cat, signal)
      const at = await resumeStep(rec, retry, filePathOf(swarm, rec, torrent.name))
      if (at === undefined) {
        // the file is gone: the whole way, which waits for a download slot at the reconciler's next tick
        await store.transition(rec, 'approved', { reason: `${retryLabel(rec)}: the downloaded file is gone, from the start` })
        return
      }
      from = at.step
      await store.transition(rec, from, { reason: `${retryLabel(rec)}: back to ${from}, ${at.why}` })
    }
    // The targets this record's bytes are not registered in yet. A line already `registered` is
    // this very record's registration (a new release is a new record): a retry after a partial
    // failure, or an image registered before a target was added to the config, leaves it as it
    // is rather than have find() take it for someone else's image (adopted).
    const todo = deps.targets.filter((t) => rec.targets[t.name]?.state !== 'registered')
    // Adopt what every target already holds: no bytes need to move. find() may already show an
    // image again (one its target retired, or hid until verified), hence authorised() first.
    authorised()
    const found = await Promise.all(todo.map(async (t) => await targetStep(rec, t, async () => await t.find(imageFor(rec, t), signal))))
    if (deps.targets.length > 0 && found.every((r) => r !== undefined)) {
      authorised()
      const regs = found as Registration[]
      todo.forEach((t, i) => { rec.targets[t.name] = registered(regs[i] as Registration, t) })
      endDownload()
      // adopted: false is what a target retired and restored (TargetImage.retiredRef)
      const restored = regs.length > 0 && regs.every((r) => !r.adopted)
      const reason = regs.length === 0
        ? 'every target holds it already'
        : restored ? 'restored where it was retired: listed again with the same sha512' : 'adopted an existing image with the same sha512'
      await store.transition(rec, 'registered', { reason, retries: 0 })
      log.info({ image: e.id, catalogue: rec.catalogue, restored, targets: todo.map((t) => t.name) },
        regs.length === 0 ? reason : restored ? 'restored in the targets that retired it' : 'adopted existing image')
      return
    }
    // Not every target holds it, but what one restored (adopted: false) is shown again already:
    // on the record now, so that a retirement before the others are done retires it again.
    const restoredBy = [...todo.entries()].filter(([i, t]) => found[i]?.adopted === false && retiredRefOf(rec.targets[t.name]) !== undefined)
    for (const [i, t] of restoredBy) rec.targets[t.name] = registered(found[i] as Registration, t)
    if (restoredBy.length > 0) await store.put(rec)
    const t = torrent ?? await obtainTorrent(deps, rec, cat, signal)
    const path = filePathOf(swarm, rec, t.name)
    if (from === undefined) {
      await store.transition(rec, 'downloading')
      const handle = swarm.add(e.infoHash, t.bytes, t.webSeeds)
      // swarm.pauseAll() only reached the handles that existed when the operator paused
      if (deps.paused() && !handle.complete) handle.pause()
      onHandle(handle)
      log.info({ image: e.id, infoHash: e.infoHash }, 'downloading')
      await abortable(handle.done, signal)
      endDownload()
      await store.transition(rec, 'verifying', { progress: 1 })
      await verify(path, abortable(handle.sha512(), signal))
    } else {
      // Read again, not the digest a handle still in the swarm kept: that is of the bytes as they
      // were downloaded, and the file may have changed since.
      if (from === 'verifying') await verify(path)
      else log.info({ image: e.id, path }, 'the verified file is unchanged: registering it without hashing it again')
      // Seeded like any verified file, without a sha1 pass over its pieces (after a restart,
      // another read of the whole image): it is the file that passed.
      onHandle(swarm.add(e.infoHash, t.bytes, t.webSeeds, { verified: true }))
    }
    rec.cached = true
    rec.lastUsed = Date.now()
    if (from === 'registering') await store.put(rec)
    else await store.transition(rec, 'registering')
    for (const [i, target] of todo.entries()) {
      authorised()
      const reg = found[i] ?? await targetStep(rec, target, async () => await target.register(imageFor(rec, target, path), signal))
      rec.targets[target.name] = registered(reg, target)
      await store.put(rec)
      log.info({ image: e.id, target: target.name, ref: reg.ref, adopted: reg.adopted }, 'registered')
    }
    await store.transition(rec, 'registered', { retries: 0, reason: 'verified and registered' })
  } finally {
    endDownload()
  }
}
