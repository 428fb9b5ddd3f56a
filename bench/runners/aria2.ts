import { existsSync } from 'node:fs'
import { chmod, link, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readLines, sleep, start, stopAll, waitUntil, type Proc } from '../proc.js'
import { measure, skipped, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'
import { startTracker } from './tracker-proc.js'

/** aria2c with the same .torrent: one seeder on the origin, one downloader per host, our tracker on the origin. */

const BT_PORT = 6881
const A2 = [
  '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
  '--disable-ipv6=true', '--file-allocation=none', '--console-log-level=warn', '--summary-interval=0',
  '--allow-overwrite=true', '--auto-save-interval=0', `--listen-port=${BT_PORT}`, '--seed-ratio=0.0'
]

export async function runAria2 (ctx: SwarmContext): Promise<SwarmRun> {
  if (!existsSync('/usr/bin/aria2c')) return skipped('aria2c', ctx, 'aria2c: not installed (apt-get install aria2)')
  const { bed, image, work } = ctx
  const seedDir = join(work, 'seed')
  await mkdir(seedDir, { recursive: true })
  await link(image.path, join(seedDir, image.id)) // the torrent's file name is the image id
  const doneFile = join(work, 'done.txt')
  await writeFile(doneFile, '')
  const hook = join(work, 'hook.sh')
  // aria2 calls the hook with GID, file count, path: the path names the host's directory
  await writeFile(hook, `#!/bin/sh\necho "$3" >> '${doneFile}'\n`)
  await chmod(hook, 0o755)
  const dirOf = (h: number): string => join(work, `h${h}`)
  const all: Proc[] = []
  try {
    const tracker = await startTracker(ctx, join(work, 'tracker.log'))
    all.push(tracker)
    const seeder = start('aria2-seed', 'ip', [...bed.exec(0), 'aria2c', ...A2, `--dir=${seedDir}`, '--bt-seed-unverified=true', image.torrentPath], join(work, 'h0.log'))
    all.push(seeder)
    if (!await waitUntil(() => seeder.exitedAt !== undefined || bed.listening(0, BT_PORT), 15_000)) throw new Error('aria2c seeder did not start listening')
    await sleep(1000) // let the seeder's first announce land before the downloaders ask the tracker
    const { run } = await measure({
      tool: 'aria2c',
      ctx,
      origin: [seeder, tracker],
      startDownloaders: () => {
        const m = new Map<number, Proc>()
        for (const h of ctx.downloaders) {
          const p = start(`aria2-h${h}`, 'ip', [...bed.exec(h), 'aria2c', ...A2, `--dir=${dirOf(h)}`, `--on-bt-download-complete=${hook}`, image.torrentPath], join(work, `h${h}.log`))
          m.set(h, p)
          all.push(p)
        }
        return m
      },
      isDone: (h) => readLines(doneFile).some((line) => line.startsWith(dirOf(h) + '/')),
      fileOf: (h) => join(dirOf(h), image.id)
    })
    await stopAll(all)
    await verifyFiles(run, image, (h) => join(dirOf(h), image.id))
    return run
  } finally {
    await stopAll(all)
  }
}
