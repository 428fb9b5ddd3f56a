import { link, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readLines, sleep, start, stopAll, waitUntil, type Proc } from '../proc.js'
import { measure, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'
import { startTracker } from './tracker-proc.js'

/**
 * The run shape every third-party BitTorrent client shares: our tracker and one seeder on the
 * origin, one downloader per host, each downloader appending its directory to `doneFile` when
 * finished. A client supplies only its command lines and how its done line reads.
 */

export const BT_PORT = 6881

export interface TrackerSwarmSpec {
  tool: string
  /** short label for process names and logs */
  label: string
  /** the seeder's command (run in host 0), given the directory holding the image */
  seederCmd: (seedDir: string) => string[]
  /** a downloader's command (run in host h), given its directory and the shared done file */
  downloaderCmd: (h: number, dir: string, doneFile: string) => string[]
  /** whether `doneFile`'s lines say the downloader writing into `dir` has finished */
  isDone: (lines: string[], dir: string) => boolean
}

export function doneFileOf (ctx: SwarmContext): string { return join(ctx.work, 'done.txt') }

export async function runTrackerSwarm (ctx: SwarmContext, spec: TrackerSwarmSpec): Promise<SwarmRun> {
  const { bed, image, work } = ctx
  const seedDir = join(work, 'seed')
  await mkdir(seedDir, { recursive: true })
  await link(image.path, join(seedDir, image.id)) // the torrent's file name is the image id
  const doneFile = doneFileOf(ctx)
  await writeFile(doneFile, '')
  const dirOf = (h: number): string => join(work, `h${h}`)
  const all: Proc[] = []
  try {
    const tracker = await startTracker(ctx, join(work, 'tracker.log'))
    all.push(tracker)
    const seeder = start(`${spec.label}-seed`, 'ip', [...bed.exec(0), ...spec.seederCmd(seedDir)], join(work, 'h0.log'))
    all.push(seeder)
    if (!await waitUntil(() => seeder.exitedAt !== undefined || bed.listening(0, BT_PORT), 15_000)) throw new Error(`${spec.tool} seeder did not start listening`)
    await sleep(1000) // let the seeder's first announce land before the downloaders ask the tracker
    const { run } = await measure({
      tool: spec.tool,
      ctx,
      origin: [seeder, tracker],
      startDownloaders: () => {
        const m = new Map<number, Proc>()
        for (const h of ctx.downloaders) {
          const p = start(`${spec.label}-h${h}`, 'ip', [...bed.exec(h), ...spec.downloaderCmd(h, dirOf(h), doneFile)], join(work, `h${h}.log`))
          m.set(h, p)
          all.push(p)
        }
        return m
      },
      isDone: (h) => spec.isDone(readLines(doneFile), dirOf(h)),
      fileOf: (h) => join(dirOf(h), image.id)
    })
    await stopAll(all)
    await verifyFiles(run, image, (h) => join(dirOf(h), image.id))
    return run
  } finally {
    await stopAll(all)
  }
}
