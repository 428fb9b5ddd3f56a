import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { spawnRole } from './proc.js'
import { fmt, machine, median } from './report.js'

/**
 * The measuring loop shared by the two-process loopback benches (engine-pair.ts for imgdist's
 * engine, profile-pair.ts for webtorrent): a fresh downloader per run against seeders that stay
 * up, each run printed, then the medians.
 */

/** What a downloader role prints as its JSON line. */
export interface LeechResult { seconds: number, cpuS: number, userS: number, sysS: number, bytes: number, maxRssMiB?: number, seedCpuS?: number }

export interface LeechRuns {
  runs: number
  work: string
  cpuProf: boolean
  /** starts one downloader in `dir`, with these extra node arguments */
  leech: (dir: string, nodeArgs: string[]) => ReturnType<typeof spawnRole>
  /** the seeders' CPU seconds so far, or undefined if one is gone */
  seedCpu: () => number | undefined
  /** what the downloader is called in the output ('downloader', 'leecher') */
  who: string
}

export async function leechRuns (o: LeechRuns): Promise<LeechResult[]> {
  const results: LeechResult[] = []
  for (let i = 0; i < o.runs; i++) {
    const dir = join(o.work, `leech-${i}`)
    await rm(dir, { recursive: true, force: true })
    await mkdir(dir, { recursive: true })
    const l = o.leech(dir, o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(o.work, 'prof')] : [])
    const seed0 = o.seedCpu()
    const r = await l.line as unknown as LeechResult
    const seed1 = o.seedCpu()
    // The seeders' CPU from the downloader's start (not from its first request): an upper bound.
    if (seed0 !== undefined && seed1 !== undefined) r.seedCpuS = seed1 - seed0
    await l.exited
    await rm(dir, { recursive: true, force: true })
    results.push(r)
    const gib = r.bytes / 2 ** 30
    const rss = r.maxRssMiB !== undefined ? `, peak RSS ${fmt(r.maxRssMiB, 0)} MiB` : ''
    console.log(`run ${i + 1}: ${fmt(r.seconds, 2)} s, ${fmt(r.bytes / 2 ** 20 / r.seconds, 1)} MiB/s, ${o.who} CPU ${fmt(r.cpuS, 2)} s (user ${fmt(r.userS, 2)}, sys ${fmt(r.sysS, 2)}) = ${fmt(r.cpuS / gib, 2)} CPU-s/GiB${rss}; seeder(s) ${fmt((r.seedCpuS ?? NaN) / gib, 2)} CPU-s/GiB`)
  }
  return results
}

export function printMedians (o: LeechRuns, results: LeechResult[], sizeMiB: number): void {
  const gib = sizeMiB / 1024
  console.log(`median: ${fmt(median(results.map((r) => sizeMiB / r.seconds)), 1)} MiB/s, ${fmt(median(results.map((r) => r.cpuS / gib)), 2)} ${o.who} CPU-s/GiB (load at end ${machine().load})`)
  if (o.cpuProf) console.log(`profiles in ${join(o.work, 'prof')}; node dist/bench/profile-summary.js <file.cpuprofile>`)
}
