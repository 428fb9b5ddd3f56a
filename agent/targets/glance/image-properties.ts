import type { TargetImage } from '../target.js'
import type { GlanceTargetConfig, Visibility } from './config-schema.js'
import { MAX_PROPERTY_LENGTH, propertyProblems } from '../../../lib/image-properties.js'
import { GlanceError } from './glance-errors.js'

/**
 * What imgdist writes on a Glance image, and how it recognises its own images afterwards: by the
 * imgdist_* properties of DESIGN.md §4, never by name.
 */

export interface GlanceImage {
  id: string
  name?: string | null
  status: string
  visibility?: string
  size?: number | null
  os_hash_algo?: string | null
  os_hash_value?: string | null
  os_hidden?: boolean
  owner?: string | null
  protected?: boolean
  updated_at?: string
  [property: string]: unknown
}

export function renderName (template: string, img: TargetImage): string {
  const e = img.entry
  const vars: Record<string, string> = { name: e.name, version: e.version, id: e.id, catalogue: img.catalogue, arch: e.arch, os: e.os }
  const name = template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m)
  return name.length > 255 ? name.slice(0, 255) : name
}

/** Endorser key ids, shortened to 16 hex digits each when the full list would not fit. */
export function endorsersValue (endorsers: string[]): string {
  const sorted = [...endorsers].sort()
  const full = sorted.join(',')
  if (full.length <= MAX_PROPERTY_LENGTH) return full
  const short = sorted.map((k) => k.slice(0, 16)).join(',')
  return short.length <= MAX_PROPERTY_LENGTH ? short : `${short.slice(0, MAX_PROPERTY_LENGTH - 3)}...`
}

/** DESIGN.md §4's identity properties, and `imgdist_site` (the agent's site, at most 128 characters by the config schema) when it is known. */
export function identityProperties (img: TargetImage, site?: string): Record<string, string> {
  return {
    imgdist_catalogue: img.catalogue,
    imgdist_id: img.entry.id,
    imgdist_version: img.entry.version,
    imgdist_sha512: img.entry.sha512,
    imgdist_endorsers: endorsersValue(img.endorsers),
    ...(site !== undefined ? { imgdist_site: site } : {})
  }
}

/**
 * Whether a half-registered image is this agent's to clean up after a crash: one of its site, or
 * one without the tag (from an agent before imgdist_site existed). Another site's may still be
 * uploading, in the same project.
 */
export function mayCleanUp (image: GlanceImage, site: string | undefined): boolean {
  return site === undefined || typeof image.imgdist_site !== 'string' || image.imgdist_site === site
}

/**
 * Set on create and removed by the PATCH that un-hides the image once Glance's own hash matched.
 * It tells an image hidden until verified (a crash may have cut its registration short) from one
 * hidden on purpose (retired with `hide`, or by an operator), which must stay hidden.
 */
export const UNVERIFIED = 'imgdist_unverified'

export function isUnverified (image: GlanceImage): boolean {
  return typeof image[UNVERIFIED] === 'string'
}

/**
 * What an image shows of its listing, as Glance properties: the entry's own properties over
 * architecture and os_distro, the site's config properties over both, then the identity
 * properties (DESIGN.md §4; without `imgdist_site`, which only the creating site sets). What
 * create and refresh write alike; of the identity, only imgdist_version and imgdist_endorsers
 * can differ for the same bytes.
 */
export function listingProperties (img: TargetImage, cfg: Pick<GlanceTargetConfig, 'nameTemplate' | 'properties'>): Record<string, string | number> {
  const e = img.entry
  const extra = [...Object.entries(e.properties), ...Object.entries(cfg.properties)]
  const bad = propertyProblems(extra)
  if (bad.length > 0) {
    throw new GlanceError('GLANCE_PROPERTY_INVALID', `image ${e.id}: properties Glance cannot take: ${bad.join('; ')}`)
  }
  return {
    architecture: e.arch,
    os_distro: e.os,
    ...Object.fromEntries(extra),
    ...identityProperties(img),
    name: renderName(cfg.nameTemplate, img),
    min_disk: e.minDisk,
    min_ram: e.minRam
  }
}

/**
 * The POST /v2/images body: private and os_hidden at first, so that not even the project's own
 * members find it in the image lists they boot from before the hash check (DESIGN.md §4).
 */
export function createBody (img: TargetImage, cfg: GlanceTargetConfig, site?: string): Record<string, unknown> {
  return {
    ...listingProperties(img, cfg),
    ...(site !== undefined ? { imgdist_site: site } : {}),
    disk_format: img.entry.diskFormat,
    container_format: img.entry.containerFormat,
    visibility: 'private',
    os_hidden: true,
    [UNVERIFIED]: 'hidden until imgdist checks os_hash_value',
    tags: cfg.tags
  }
}

export interface PatchOp { op: 'add' | 'replace' | 'remove', path: string, value?: unknown }

/**
 * The one JSON patch that releases a verified image: un-hidden if imgdist hid it, and widened to
 * the configured visibility. One request, so users never see it with a visibility it should not
 * have; none at all when nothing changes.
 */
export function releaseOps (image: GlanceImage, visibility: Visibility): PatchOp[] {
  const ops: PatchOp[] = []
  if (isUnverified(image)) {
    ops.push({ op: 'remove', path: `/${UNVERIFIED}` })
    if (image.os_hidden === true) ops.push({ op: 'replace', path: '/os_hidden', value: false })
  }
  if (visibility !== 'private' && image.visibility !== visibility) ops.push({ op: 'replace', path: '/visibility', value: visibility })
  return ops
}

/**
 * The operations that make an image imgdist registered show `img`'s listing of the same bytes,
 * which may name them differently from the listing it was registered under: another version
 * string or name, min_disk/min_ram, entry properties, endorsers after a key rotation. `former`:
 * the entry property keys it was registered with; those neither the new listing nor the site's
 * config sets are removed. Nothing else is: what an operator added stays. disk_format and
 * container_format are not among them (Glance keeps an active image's).
 */
export function listingOps (image: GlanceImage, img: TargetImage, cfg: Pick<GlanceTargetConfig, 'nameTemplate' | 'properties'>, former: string[] = []): PatchOp[] {
  const want = listingProperties(img, cfg)
  const ops: PatchOp[] = []
  for (const [k, v] of Object.entries(want)) {
    if (image[k] !== v) ops.push({ op: image[k] === undefined || image[k] === null ? 'add' : 'replace', path: `/${k}`, value: v })
  }
  for (const k of former) if (!(k in want) && image[k] !== undefined) ops.push({ op: 'remove', path: `/${k}` })
  return ops
}

/**
 * releaseOps() for an image imgdist itself retired with `hide` (or deactivated) and the catalogue
 * lists again: shown again as well, and showing the listing that brought it back (listingOps,
 * `former` as there), in the same single PATCH.
 */
export function restoreOps (image: GlanceImage, img: TargetImage, cfg: Pick<GlanceTargetConfig, 'visibility' | 'nameTemplate' | 'properties'>, former: string[] = []): PatchOp[] {
  const ops = releaseOps(image, cfg.visibility)
  if (image.os_hidden === true && !ops.some((o) => o.path === '/os_hidden')) ops.push({ op: 'replace', path: '/os_hidden', value: false })
  return [...ops, ...listingOps(image, img, cfg, former)]
}

/** Retiring with `hide`: out of every image list and private, in one PATCH (none if it is both already). */
export function hideOps (image: GlanceImage): PatchOp[] {
  const ops: PatchOp[] = []
  if (image.os_hidden !== true) ops.push({ op: 'replace', path: '/os_hidden', value: true })
  if (image.visibility !== 'private') ops.push({ op: 'replace', path: '/visibility', value: 'private' })
  return ops
}

/** Registered by imgdist for this catalogue entry (any version of its bytes). */
export function isOurs (image: GlanceImage, img: TargetImage): boolean {
  return image.imgdist_catalogue === img.catalogue && image.imgdist_id === img.entry.id
}

/** Registered by imgdist at all (any catalogue). */
export function isImgdistImage (image: GlanceImage): boolean {
  return typeof image.imgdist_catalogue === 'string' && typeof image.imgdist_id === 'string' && typeof image.imgdist_sha512 === 'string'
}

/** Active, and Glance's own size and sha512 equal the catalogue's. */
export function matchesEntry (image: GlanceImage, img: TargetImage): boolean {
  return image.status === 'active' && image.size === img.entry.size &&
    image.os_hash_algo === 'sha512' && image.os_hash_value === img.entry.sha512
}

export const STUCK_STATUSES = ['queued', 'saving', 'importing', 'uploading'] as const

/**
 * What a crash or a failed clean-up left half-registered: an upload in a stuck status, or (when
 * the entry is known) an image still hidden unverified whose bytes are not the entry's (a hash
 * mismatch whose delete failed, an earlier release). A verified one is finished, not removed.
 */
export function isLeftOver (image: GlanceImage, img?: TargetImage): boolean {
  if ((STUCK_STATUSES as readonly string[]).includes(image.status)) return true
  return img !== undefined && isUnverified(image) && !matchesEntry(image, img)
}
