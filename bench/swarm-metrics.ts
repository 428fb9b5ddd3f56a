import type { Bound } from './kumar-ross.js'
import { median } from './report.js'
import type { SwarmRun } from './runners/swarm-run.js'

/**
 * The numbers the swarm tables show for one tool's run, worked out in one place so that a round's
 * table (swarm-report.ts) and the summary over rounds (swarm-summary.ts) cannot disagree.
 */

export interface RunMetrics {
  done: number
  downloaders: number
  first?: number
  median?: number
  /** the last completion, only if every downloader completed (else the run has no "last") */
  last?: number
  lastPerBound?: number
  /** against aria2c's last completion in the same round */
  lastPerAria2?: number
  egressPerF?: number
  /** CPU seconds per GiB received, mean over the downloaders that completed */
  cpuPerGiB?: number
  /** against aria2c's CPU-s/GiB in the same round */
  cpuPerAria2?: number
  originCpu?: number
}

/** The metrics of every run of one round; the aria2c run of the round (if any) is the yardstick. */
export function roundMetrics (runs: SwarmRun[], bound: Bound, sizeBytes: number): Map<SwarmRun, RunMetrics> {
  const aria2 = runs.find((x) => x.tool === 'aria2c' && x.skipped === undefined)
  const aria2Last = aria2 === undefined ? undefined : lastOf(aria2)
  const aria2Cpu = aria2 === undefined ? undefined : cpuPerGiB(aria2, sizeBytes)
  const out = new Map<SwarmRun, RunMetrics>()
  for (const run of runs) {
    if (run.skipped !== undefined) continue
    const times = doneTimes(run)
    const last = lastOf(run)
    const cpu = cpuPerGiB(run, sizeBytes)
    out.set(run, {
      done: times.length,
      downloaders: run.downloaders.length,
      first: times[0],
      median: median(times),
      last,
      lastPerBound: last !== undefined ? last / bound.seconds : undefined,
      lastPerAria2: ratio(last, aria2Last),
      egressPerF: run.originEgressBytes !== undefined ? run.originEgressBytes / sizeBytes : undefined,
      cpuPerGiB: cpu,
      cpuPerAria2: ratio(cpu, aria2Cpu),
      originCpu: run.originCpuSeconds
    })
  }
  return out
}

function ratio (a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined
}

function doneTimes (run: SwarmRun): number[] {
  return run.downloaders.map((d) => d.seconds).filter((s): s is number => s !== undefined).sort((a, b) => a - b)
}

function lastOf (run: SwarmRun): number | undefined {
  const t = doneTimes(run)
  return t.length === run.downloaders.length ? t[t.length - 1] : undefined
}

function cpuPerGiB (run: SwarmRun, sizeBytes: number): number | undefined {
  const cpus = run.downloaders.filter((d) => d.seconds !== undefined && d.cpuSeconds !== undefined).map((d) => d.cpuSeconds as number)
  return cpus.length > 0 ? cpus.reduce((a, x) => a + x, 0) / (cpus.length * sizeBytes / 2 ** 30) : undefined
}
