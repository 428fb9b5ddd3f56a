import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TargetImage } from '../../agent/targets/target.js'
import type { ImageEntry } from '../../lib/schema.js'
import type { OpenStack } from './glance-openstack.js'

/** Catalogue images for the glance target's tests against a real Glance, and what Glance holds of them. */

export const CATALOGUE = 'it-catalogue'
export const ENDORSERS = ['a'.repeat(64), 'b'.repeat(64)]

/** A verified file of random bytes and its entry, as the pipeline hands it to register(). */
export async function makeImage (dir: string, id: string, size: number, props: Record<string, string> = {}): Promise<TargetImage> {
  const bytes = randomBytes(size)
  const filePath = join(dir, `${id}.img`)
  await writeFile(filePath, bytes)
  const entry: ImageEntry = {
    id,
    name: `Test ${id}`,
    version: '1.0',
    sha512: createHash('sha512').update(bytes).digest('hex'),
    size,
    infoHash: createHash('sha1').update(bytes).digest('hex'),
    torrent: `torrents/${id}.torrent`,
    diskFormat: 'raw',
    containerFormat: 'bare',
    minDisk: 1,
    minRam: 256,
    arch: 'x86_64',
    os: 'alma',
    properties: { hw_disk_bus: 'virtio', ...props }
  }
  return { catalogue: CATALOGUE, indexVersion: 3, entry, endorsers: ENDORSERS, filePath }
}

/**
 * The demo project's images of one catalogue id. `shown` is what the project's members list by
 * default; `all` adds the os_hidden ones, which Glance lists only when asked (and then only those).
 */
export async function imagesOf (os: OpenStack, id: string, which: 'all' | 'shown' = 'all'): Promise<any[]> {
  const q = `/v2/images?imgdist_id=${id}&imgdist_catalogue=${CATALOGUE}`
  const shown = (await os.glanceGet(q)).body.images as any[]
  if (which === 'shown') return shown
  return [...shown, ...(await os.glanceGet(`${q}&os_hidden=true`)).body.images as any[]]
}
