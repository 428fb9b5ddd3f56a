import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { tryRun } from '../proc.js'
import { skipped, type SwarmContext, type SwarmRun } from './swarm-run.js'
import { BT_PORT, runTrackerSwarm } from './tracker-swarm.js'

/** libtorrent-rasterbar 2.0 (python3-libtorrent) with the same .torrent and tracker as aria2c. */

export async function runLibtorrent (ctx: SwarmContext): Promise<SwarmRun> {
  if (tryRun('/usr/bin/python3', ['-c', 'import libtorrent']) === undefined) return skipped('libtorrent', ctx, 'libtorrent: not installed (apt-get install python3-libtorrent)')
  const { bed, image } = ctx
  const script = join(ctx.distDir, '..', 'bench', 'lt-peer.py')
  if (!existsSync(script)) return skipped('libtorrent', ctx, `libtorrent: ${script} missing`)
  return await runTrackerSwarm(ctx, {
    tool: 'libtorrent',
    label: 'lt',
    seederCmd: (seedDir) => ['/usr/bin/python3', script, 'seed', image.torrentPath, seedDir, bed.ip(0), String(BT_PORT)],
    downloaderCmd: (h, dir, doneFile) => ['/usr/bin/python3', script, 'get', image.torrentPath, dir, bed.ip(h), String(BT_PORT), doneFile],
    isDone: (lines, dir) => lines.includes(dir + '/')
  })
}
