import { join } from 'node:path'
import { start, waitUntil, type Proc } from '../proc.js'
import type { SwarmContext } from './swarm-run.js'

/** bench/tracker.ts on the origin host at the origin port (the announce URL in the bench .torrent). */
export async function startTracker (ctx: SwarmContext, logPath: string): Promise<Proc> {
  const p = start('tracker', 'ip', [...ctx.bed.exec(0), process.execPath, join(ctx.distDir, 'bench', 'tracker.js'), ctx.bed.ip(0), String(ctx.originPort)], logPath)
  if (!await waitUntil(() => p.exitedAt !== undefined || ctx.bed.listening(0, ctx.originPort), 15_000) || p.exitedAt !== undefined) {
    throw new Error(`tracker did not start (see ${logPath})`)
  }
  return p
}
