import { fmt, median } from './report.js'
import type { RunMetrics } from './swarm-metrics.js'
import type { SwarmRun } from './runners/swarm-run.js'

/**
 * One row per tool over several rounds of bench:swarm (`--rounds K`). A single run of this bench
 * moves by ±5 % from one hour to the next on this kind of VM (bench/HISTORY.md, sessions 9–22), as
 * much as the distance to the 1.25 target; the median of rounds, with its range beside it, is
 * what a claim should rest on. Ratios to aria2c are taken within each round, then summarised, so
 * a slow hour slows both sides of the ratio alike.
 */

export const SUMMARY_HEAD = ['tool', 'complete rounds', 'last/bound', 'last/aria2c', 'origin egress/F', 'CPU-s/GiB recv', 'CPU/aria2c']

export const SUMMARY_NOTE = 'Over all rounds: median (min–max); a round counts only if every downloader completed; ratios to aria2c are within each round.'

export function summaryRows (rounds: Array<Map<SwarmRun, RunMetrics>>): string[][] {
  const byTool = new Map<string, RunMetrics[]>()
  for (const round of rounds) {
    for (const [run, m] of round) {
      const list = byTool.get(run.tool) ?? []
      list.push(m)
      byTool.set(run.tool, list)
    }
  }
  return [...byTool].map(([tool, ms]) => {
    const complete = ms.filter((m) => m.last !== undefined)
    const col = (pick: (m: RunMetrics) => number | undefined): string => spread(complete.map(pick).filter((x): x is number => x !== undefined))
    return [tool, `${complete.length}/${ms.length}`, col((m) => m.lastPerBound), col((m) => m.lastPerAria2), col((m) => m.egressPerF), col((m) => m.cpuPerGiB), col((m) => m.cpuPerAria2)]
  })
}

/** "1.27 (1.24–1.31)"; one value alone; "—" for none */
export function spread (xs: number[]): string {
  if (xs.length === 0) return '—'
  const mid = fmt(median(xs), 2)
  if (xs.length === 1) return mid
  return `${mid} (${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)})`
}
