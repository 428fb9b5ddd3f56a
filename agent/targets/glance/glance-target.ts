import { stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import type { Logger } from 'pino'
import type { Registration, RetireAction, Target, TargetImage, TargetReconfiguration, TargetSettings } from '../target.js'
import { resolveCloud, type ResolvedCloud } from './clouds-config.js'
import type { GlanceTargetConfig } from './config-schema.js'
import { connectGlance, type GlanceConnection } from './glance-connection.js'
import { GlanceError, visibilityRefused } from './glance-errors.js'
import type { GlanceRegistration, GlanceTargetDeps, GlanceTargetStatus } from './glance-target-types.js'
import type { ImageApi } from './image-api.js'
import {
  createBody, hideOps, isImgdistImage, isLeftOver, isOurs, isUnverified, listingOps, matchesEntry, mayCleanUp, releaseOps, restoreOps, STUCK_STATUSES, type GlanceImage, type PatchOp
} from './image-properties.js'
import { formerOf, glanceSettings, reloadedConfig, settingsOps, validGlanceConfig } from './target-settings.js'

export { GlanceTargetConfig } from './config-schema.js'
export { GlanceError, type GlanceCode } from './glance-errors.js'

export type { GlanceRegistration, GlanceTargetDeps, GlanceTargetStatus } from './glance-target-types.js'

export function createGlanceTarget (config: unknown, deps: GlanceTargetDeps = {}): GlanceTarget {
  const cfg = validGlanceConfig(config)
  const cloud = resolveCloud(cfg, { env: deps.env ?? {}, homeDir: deps.homeDir ?? homedir(), cwd: deps.cwd })
  return new GlanceTarget(cfg, cloud, { ...deps, logger: deps.logger ?? deps.log })
}

export class GlanceTarget implements Target {
  readonly type = 'glance'
  readonly name: string
  #settings: TargetSettings
  /** replaced as a whole by a reload: a call takes it once, when it begins, and keeps to it */
  #cfg: GlanceTargetConfig
  readonly #cloud: ResolvedCloud
  readonly #log?: Logger
  readonly #conn: GlanceConnection
  readonly #images: ImageApi
  readonly #site: string | undefined
  #lastError: GlanceTargetStatus['lastError']
  #lastImageId: string | undefined
  #lastOkAt: string | undefined
  #closed = false

  constructor (cfg: GlanceTargetConfig, cloud: ResolvedCloud, deps: GlanceTargetDeps) {
    this.name = cfg.name
    this.#cfg = cfg
    this.#settings = glanceSettings(cfg)
    this.#site = deps.site
    this.#cloud = cloud
    this.#log = deps.logger?.child({ target: cfg.name, type: 'glance' })
    this.#conn = connectGlance(cfg, cloud, this.#log, deps.dispatcher)
    this.#images = this.#conn.images
  }

  get settings (): TargetSettings { return this.#settings }

  reconfigure (config: unknown): TargetReconfiguration {
    const { changed, restart, cfg } = reloadedConfig(this.#cfg, config)
    return {
      changed,
      restart,
      apply: () => {
        if (changed.length === 0) return
        this.#cfg = cfg
        this.#settings = glanceSettings(cfg)
      }
    }
  }

  /** With img.retiredRef, first what this target retired (#restore); register() does not try that again. */
  async find (img: TargetImage, signal?: AbortSignal): Promise<GlanceRegistration | undefined> {
    const cfg = this.#cfg
    return await this.#track(img, async () => await this.#restore(img, cfg, signal) ?? await this.#find(img, cfg, signal))
  }

  async register (img: TargetImage, signal?: AbortSignal): Promise<GlanceRegistration> {
    const cfg = this.#cfg
    return await this.#track(img, async () => {
      const path = img.filePath
      if (path === undefined) throw new GlanceError('GLANCE_FILE_MISMATCH', `image ${img.entry.id}: register() needs the verified file`)
      const st = await stat(path).catch((err: unknown) => {
        throw new GlanceError('IO_ERROR', `image ${img.entry.id}: cannot read ${path}: ${(err as Error).message}`, { cause: err })
      })
      if (st.size !== img.entry.size) {
        throw new GlanceError('GLANCE_FILE_MISMATCH', `image ${img.entry.id}: ${path} has ${st.size} bytes, the catalogue says ${img.entry.size}`)
      }
      const ours = await this.#ours(img, signal)
      const existing = await this.#find(img, cfg, signal, ours)
      if (existing !== undefined) return existing
      await this.#deleteStuck(ours, signal, img)

      const body = createBody(img, cfg, this.#site)
      const created = await this.#images.create(body, signal)
      const id = created.id
      this.#lastImageId = id
      this.#log?.info({ imageId: id, id: img.entry.id, bytes: img.entry.size }, 'glance image created, uploading')
      try {
        await this.#images.upload(id, path, img.entry.size, cfg.maxUploadBytesPerSecond, signal)
      } catch (err) {
        // best effort: if Glance is down the image stays queued/saving and the next attempt or recover() removes it
        await this.#images.delete(id, undefined, 1).catch(() => {})
        throw err instanceof GlanceError ? err.withImage(id) : err
      }
      const got = await this.#images.get(id, signal)
      if (got === undefined || !matchesEntry(got, img)) {
        await this.#images.delete(id, signal).catch(() => {})
        throw new GlanceError('GLANCE_HASH_MISMATCH',
          `image ${img.entry.id}: Glance has status=${got?.status ?? 'gone'} size=${String(got?.size)} ${got?.os_hash_algo ?? 'hash'}=${got?.os_hash_value ?? 'none'}, ` +
          `the catalogue says size=${img.entry.size} sha512=${img.entry.sha512}; image deleted`, { retryable: true, imageId: id })
      }
      const final = await this.#release(got, cfg, signal)
      this.#log?.info({ imageId: id, id: img.entry.id, visibility: final.visibility }, 'glance image registered and verified')
      return this.#registration(final, false, cfg)
    })
  }

  async retire (img: TargetImage, reg: Registration, action: RetireAction, signal?: AbortSignal): Promise<void> {
    if (action === 'keep') return
    await this.#track(img, async () => {
      const image = await this.#images.get(reg.ref, signal)
      if (image === undefined) return
      if (!isOurs(image, img)) {
        this.#log?.warn({ imageId: reg.ref, id: img.entry.id, action }, 'not retiring a Glance image imgdist did not register')
        return
      }
      if (action === 'deactivate') {
        if (image.status === 'active') await this.#images.deactivate(image.id, signal)
      } else if (action === 'hide') {
        const ops = hideOps(image)
        if (ops.length > 0) await this.#images.patch(image.id, ops, signal)
      } else {
        await this.#images.delete(image.id, signal)
      }
      this.#log?.info({ imageId: image.id, id: img.entry.id, action }, 'glance image retired')
    })
  }

  /**
   * The same bytes re-signed with other metadata: the image this target registered shows the new
   * listing (listingOps), in one PATCH. One imgdist did not register is left as it is.
   */
  async refresh (img: TargetImage, reg: Registration, signal?: AbortSignal): Promise<void> {
    const cfg = this.#cfg
    await this.#track(img, async () => {
      const image = await this.#images.get(reg.ref, signal)
      if (image === undefined || !isOurs(image, img) || image.imgdist_sha512 !== img.entry.sha512) {
        this.#log?.info({ imageId: reg.ref, id: img.entry.id }, 'not refreshing a Glance image that is gone or that imgdist did not register')
        return
      }
      // what the former listing and the former settings set and the current ones do not, goes
      const former = formerOf(img)
      const ops = [...listingOps(image, img, cfg, former.propertyKeys), ...settingsOps(image, cfg, former.settings)]
      await this.#release(image, cfg, signal, ops)
      if (image.disk_format !== img.entry.diskFormat || image.container_format !== img.entry.containerFormat) {
        this.#log?.warn({ imageId: image.id, id: img.entry.id }, 'the catalogue re-signed these bytes with another disk or container format, which Glance cannot change on an existing image')
      }
      this.#log?.info({ imageId: image.id, id: img.entry.id, version: img.entry.version, changed: ops.map((o) => o.path) }, 'glance image shows the listing now in force under the current settings')
    })
  }

  /** Removes imgdist images a crash of this site's agent left in queued/saving/importing (mayCleanUp), hidden or not. */
  async recover (signal?: AbortSignal): Promise<void> {
    await this.#track(undefined, async () => {
      const projectId = await this.#projectId(signal)
      // one listing for every stuck status (Glance's `in:` operator), shown and hidden: two requests, not eight
      const stuck = await this.#images.listWithHidden({ status: `in:${STUCK_STATUSES.join(',')}`, ...(projectId !== undefined ? { owner: projectId } : {}) }, signal)
      await this.#deleteStuck(stuck.filter(isImgdistImage), signal)
    })
  }

  status (): GlanceTargetStatus {
    return {
      name: this.name,
      type: 'glance',
      credentials: this.#cloud.source,
      authUrl: this.#cloud.authUrl,
      endpoint: this.#conn.client.endpoint,
      region: this.#cloud.region,
      interface: this.#cloud.interface,
      projectId: this.#conn.session.current?.projectId,
      lastImageId: this.#lastImageId,
      lastOkAt: this.#lastOkAt,
      lastError: this.#lastError
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#conn.close()
  }

  async #find (img: TargetImage, cfg: GlanceTargetConfig, signal?: AbortSignal, ours?: GlanceImage[]): Promise<GlanceRegistration | undefined> {
    const verified = (ours ?? await this.#ours(img, signal)).filter((i) => i.imgdist_sha512 === img.entry.sha512 && matchesEntry(i, img))
    // Hidden on purpose (retired with `hide`) stays hidden; hidden until verified is this site's
    // registration that a crash cut short, finished here. Another site's may still be checking.
    const mine = verified.find((i) => i.os_hidden !== true) ?? verified.find((i) => isUnverified(i) && mayCleanUp(i, this.#site))
    if (mine !== undefined) return this.#registration(await this.#release(mine, cfg, signal), true, cfg)
    if (!cfg.adoptExisting) return undefined
    const projectId = await this.#projectId(signal)
    const same = await this.#images.list({ os_hash_value: img.entry.sha512, status: 'active', ...(projectId !== undefined ? { owner: projectId } : {}) }, signal)
    const other = same.find((i) => matchesEntry(i, img))
    if (other === undefined) return undefined
    this.#log?.info({ imageId: other.id, id: img.entry.id }, 'adopting an existing Glance image with the same sha512 (left untouched)')
    return this.#registration(other, true, cfg)
  }

  /**
   * The image this target retired (img.retiredRef), when the catalogue lists the same bytes again:
   * active and shown again, under the listing's version and endorsers (restoreOps), rather than
   * uploaded a second time beside it. Anything else under that id (gone, other bytes, not this
   * entry's) is left as it is, and the bytes are registered anew; so are they when this project
   * may not reactivate (Glance's policy may keep that to admins).
   */
  async #restore (img: TargetImage, cfg: GlanceTargetConfig, signal?: AbortSignal): Promise<GlanceRegistration | undefined> {
    if (img.retiredRef === undefined) return undefined
    let image = await this.#images.get(img.retiredRef, signal)
    if (image === undefined || !isOurs(image, img) || image.imgdist_sha512 !== img.entry.sha512) return undefined
    if (image.status === 'deactivated') {
      try {
        await this.#images.reactivate(image.id, signal)
      } catch (err) {
        if (!(err instanceof GlanceError && err.code === 'GLANCE_FORBIDDEN')) throw err
        this.#log?.warn({ imageId: image.id, id: img.entry.id, err: err.message }, 'may not reactivate the image retired earlier: uploading it again')
        return undefined
      }
      image = await this.#images.get(image.id, signal)
      if (image === undefined) return undefined
    }
    if (!matchesEntry(image, img)) return undefined
    // under the current settings, as a refresh would bring it (the config may have changed since)
    const former = formerOf(img)
    const ops = restoreOps(image, img, cfg, former.propertyKeys)
    ops.push(...settingsOps(image, cfg, former.settings).filter((o) => !ops.some((p) => p.path === o.path)))
    const final = await this.#release(image, cfg, signal, ops)
    this.#log?.info({ imageId: image.id, id: img.entry.id, visibility: final.visibility }, 'glance image retired earlier restored: listed again by the catalogue')
    return this.#registration(final, false, cfg)
  }

  async #ours (img: TargetImage, signal?: AbortSignal): Promise<GlanceImage[]> {
    const projectId = await this.#projectId(signal)
    const found = await this.#images.listWithHidden({
      imgdist_catalogue: img.catalogue, imgdist_id: img.entry.id, ...(projectId !== undefined ? { owner: projectId } : {})
    }, signal)
    return found.filter((i) => isOurs(i, img))
  }

  async #deleteStuck (images: GlanceImage[], signal?: AbortSignal, img?: TargetImage): Promise<void> {
    for (const i of images) {
      if (!isLeftOver(i, img)) continue
      if (!mayCleanUp(i, this.#site)) {
        this.#log?.info({ imageId: i.id, id: i.imgdist_id, status: i.status, site: i.imgdist_site }, 'leaving a half-registered Glance image of another site alone')
        continue
      }
      this.#log?.warn({ imageId: i.id, id: i.imgdist_id, status: i.status }, 'deleting a half-registered Glance image left by an earlier attempt')
      await this.#images.delete(i.id, signal)
    }
  }

  /**
   * Only after the hash check: un-hide and widen to the configured visibility, in one PATCH
   * (releaseOps); also the PATCH of a restore or a refresh, which may change the visibility too.
   * No request when there is nothing to change.
   */
  async #release (image: GlanceImage, cfg: GlanceTargetConfig, signal?: AbortSignal, ops: PatchOp[] = releaseOps(image, cfg.visibility)): Promise<GlanceImage> {
    const visibility = cfg.visibility
    if (ops.length === 0) return image
    return await this.#images.patch(image.id, ops, signal).catch((err: unknown) => {
      // The PATCH is all or nothing: a refused visibility leaves the image verified, hidden and
      // private, and a retry after the operator's fix only releases it.
      const widening = ops.some((o) => o.path === '/visibility')
      if (err instanceof GlanceError && err.code === 'GLANCE_FORBIDDEN' && widening) throw visibilityRefused(image, visibility, err)
      throw err
    })
  }

  /** the project the token is scoped to: imgdist lists only its images */
  async #projectId (signal?: AbortSignal): Promise<string | undefined> { return (await this.#conn.session.token(signal)).projectId }

  /** `cfg`: the config the call began with, whose settings the image got (Registration.settings) */
  #registration (image: GlanceImage, adopted: boolean, cfg: GlanceTargetConfig): GlanceRegistration {
    this.#lastImageId = image.id
    return { ref: image.id, imageId: image.id, adopted, status: image.status, visibility: image.visibility, settings: cfg === this.#cfg ? this.#settings : glanceSettings(cfg) }
  }

  async #track<T> (img: TargetImage | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn()
      this.#lastOkAt = new Date().toISOString()
      return out
    } catch (err) {
      const e = err instanceof GlanceError
        ? err
        : new GlanceError('INTERNAL', `${img !== undefined ? `image ${img.entry.id}: ` : ''}${(err as Error).message}`, { cause: err })
      this.#lastError = { code: e.code, message: e.message, retryable: e.retryable, imageId: e.imageId, at: new Date().toISOString() }
      if (e.imageId !== undefined) this.#lastImageId = e.imageId
      throw e
    }
  }
}
