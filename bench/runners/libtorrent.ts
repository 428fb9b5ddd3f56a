import { existsSync } from 'node:fs'
import { link, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readLines, sleep, start, stopAll, tryRun, waitUntil, type Proc } from '../proc.js'
import { measure, skipped, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'
import { startTracker } from './tracker-proc.js'

/** libtorrent-rasterbar 2.0 (python3-libtorrent) with the same .torrent and tracker as aria2c. */

const BT_PORT = 6881

export async function runLibtorrent (ctx: SwarmContext): Promise<SwarmRun> {
  if (tryRun('/usr/bin/python3', ['-c', 'import libtorrent']) === undefined) return skipped('libtorrent', ctx, 'libtorrent: not installed (apt-get install python3-libtorrent)')
  const { bed, image, work } = ctx
  const script = join(ctx.distDir, '..', 'bench', 'lt-peer.py')
  if (!existsSync(script)) return skipped('libtorrent', ctx, `libtorrent: ${script} missing`)
  const seedDir = join(work, 'seed')
  await mkdir(seedDir, { recursive: true })
  await link(image.path, join(seedDir, image.id))
  const doneFile = join(work, 'done.txt')
  await writeFile(doneFile, '')
  const dirOf = (h: number): string => join(work, `h${h}`)
  const all: Proc[] = []
  try {
    const tracker = await startTracker(ctx, join(work, 'tracker.log'))
    all.push(tracker)
    const seeder = start('lt-seed', 'ip', [...bed.exec(0), '/usr/bin/python3', script, 'seed', image.torrentPath, seedDir, bed.ip(0), String(BT_PORT)], join(work, 'h0.log'))
    all.push(seeder)
    if (!await waitUntil(() => seeder.exitedAt !== undefined || bed.listening(0, BT_PORT), 15_000)) throw new Error('libtorrent seeder did not start listening')
    await sleep(1000)
    const { run } = await measure({
      tool: 'libtorrent',
      ctx,
      origin: [seeder, tracker],
      startDownloaders: () => {
        const m = new Map<number, Proc>()
        for (const h of ctx.downloaders) {
          const p = start(`lt-h${h}`, 'ip', [...bed.exec(h), '/usr/bin/python3', script, 'get', image.torrentPath, dirOf(h), bed.ip(h), String(BT_PORT), doneFile], join(work, `h${h}.log`))
          m.set(h, p)
          all.push(p)
        }
        return m
      },
      isDone: (h) => readLines(doneFile).includes(dirOf(h) + '/'),
      fileOf: (h) => join(dirOf(h), image.id)
    })
    await stopAll(all)
    await verifyFiles(run, image, (h) => join(dirOf(h), image.id))
    return run
  } finally {
    await stopAll(all)
  }
}
