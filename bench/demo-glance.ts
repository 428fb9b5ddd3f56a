import { createGlanceTarget, type GlanceTarget } from '../agent/targets/glance/glance-target.js'
import type { TargetImage } from '../agent/targets/target.js'
import type { ImageEntry } from '../lib/schema.js'

/**
 * The demo's optional Glance mode (`--glance-cloud NAME`): site-1 also registers the image in a
 * local Glance. The demo looks at Glance through the glance target module itself, so the cloud is
 * resolved exactly as the agent resolves it (OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
 * ~/.config/openstack/, /etc/openstack/), and checks the result with Glance's own sha512.
 */

export const DEMO_GLANCE_TARGET = 'glance'

/** The agent config entry for site-1. */
export function glanceTargetConfig (cloud: string): Record<string, unknown> {
  return { name: DEMO_GLANCE_TARGET, type: 'glance', cloud, tags: ['imgdist', 'imgdist-demo'], maxAttempts: 3, retryBaseMs: 200, retryMaxMs: 2000 }
}

export interface DemoGlance {
  cloud: string
  /** where the credentials came from and which endpoint, for the demo's output (no secrets) */
  describe: () => string
  /** Fails with a clear message when the cloud is unknown or Keystone/Glance are not answering. */
  probe: (img: TargetImage) => Promise<void>
  /** After site-1 reports it registered: the image is active in Glance with Glance's sha512 = the catalogue's. */
  check: (img: TargetImage, imageId: string) => Promise<string>
  close: () => Promise<void>
}

export function openDemoGlance (cloud: string, env: Record<string, string | undefined>): DemoGlance {
  let target: GlanceTarget
  try {
    target = createGlanceTarget({ ...glanceTargetConfig(cloud), adoptExisting: false }, { env })
  } catch (err) {
    throw new Error(`--glance-cloud ${cloud}: ${(err as Error).message} (see docs/glance.md, "A local Keystone + Glance")`)
  }
  return {
    cloud,
    describe: () => {
      const s = target.status()
      return `Glance ${s.endpoint ?? '(from the service catalog)'}, credentials from ${s.credentials}`
    },
    probe: async (img) => {
      try {
        await target.find(img)
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR'
        throw new Error(`--glance-cloud ${cloud}: Glance is not usable: ${code}: ${(err as Error).message} (is a local Glance running? see docs/glance.md)`)
      }
    },
    check: async (img, imageId) => {
      const reg = await target.find(img)
      if (reg === undefined) throw new Error(`Glance has no active image with sha512 ${img.entry.sha512.slice(0, 16)}… (site-1 said ${imageId})`)
      if (reg.ref !== imageId) throw new Error(`Glance image ${reg.ref} differs from the one site-1 registered (${imageId})`)
      return `image ${reg.ref}: ${reg.status}, visibility ${reg.visibility ?? '?'}, os_hash_value = catalogue sha512, size ${img.entry.size}`
    },
    close: async () => { await target.close() }
  }
}

export function demoTargetImage (catalogue: string, indexVersion: number, entry: ImageEntry, endorsers: string[]): TargetImage {
  return { catalogue, indexVersion, entry, endorsers }
}
