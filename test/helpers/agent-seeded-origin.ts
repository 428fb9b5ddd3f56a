import { join } from 'node:path'
import type { ImageEntry } from '../../lib/schema.js'
import type { Fixture } from './catalogue-fixture.js'
import { originTestbed, startSeeder, type Origin } from './agent-origin.js'
import { agentFleet, imagesOf, waitFor, type AgentProc, type ImageViewLite } from './agent-proc.js'

/**
 * The start most agent lifecycle tests share: a stand-in origin (originTestbed), one image in its
 * catalogue seeded by a webtorrent client, and agents subscribed to it with 1 s polls, killed at
 * the end of the test.
 */

export interface SeededOrigin {
  dir: string
  fx: Fixture
  origin: Origin
  entry: ImageEntry
  seeder: Awaited<ReturnType<typeof startSeeder>>
  /** the agents' subscriptions (for a config rewritten before a SIGHUP) */
  sub: Array<Record<string, unknown>>
  /** an agent in `<dir>/site` subscribed to the origin; `extra` is more of its config */
  startSite: (site: string, extra?: Record<string, unknown>) => Promise<AgentProc>
  /** the fleet's startAgent, for a restart on the same config */
  startAgent: ReturnType<typeof agentFleet>['startAgent']
}

export interface SeededImage { id: string, size: number, pieceLength: number, uploadLimit?: number, expires?: string }

export async function seededOrigin (t: { teardown: (fn: () => unknown) => void }, prefix: string, image: SeededImage,
  subscription: Record<string, unknown> = {}): Promise<SeededOrigin> {
  const { dir, fx, origin } = await originTestbed(t, prefix)
  const entry = await fx.addImage(image.id, image.size, { pieceLength: image.pieceLength, announce: [origin.announce], ...(image.expires !== undefined ? { expires: image.expires } : {}) })
  const seeder = await startSeeder(fx, [entry.id], image.uploadLimit !== undefined ? { uploadLimit: image.uploadLimit } : {})
  t.teardown(seeder.close)
  const { startAgent } = agentFleet(t)
  const sub = [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s', ...subscription }]
  return {
    dir, fx, origin, entry, seeder, sub, startAgent,
    startSite: async (site, extra = {}) => await startAgent(join(dir, 'site'), site, { subscriptions: sub, ...extra })
  }
}

/**
 * Waits until one of the agent's images matches `pred` and returns it; on a timeout the test's
 * log gets `imgdist-agent images`, which says where each image got stuck.
 */
export async function imageWhere (t: { comment: (...m: unknown[]) => void }, a: AgentProc, what: string,
  pred: (i: ImageViewLite) => boolean, ms?: number): Promise<ImageViewLite> {
  return await waitFor(what, async () => (await imagesOf(a)).find(pred), ms)
    .catch(async (err) => { t.comment(await a.cli('images').catch((e: Error) => e.message)); throw err })
}
