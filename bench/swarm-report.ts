import type { Bound } from './kumar-ross.js'
import { fmt, machineLines, markdownTable, textTable, type Machine } from './report.js'
import type { SwarmRun } from './runners/swarm-run.js'
import { roundMetrics, type RunMetrics } from './swarm-metrics.js'
import { SUMMARY_HEAD, SUMMARY_NOTE, summaryRows } from './swarm-summary.js'

/**
 * The swarm run as a terminal table and as a RESULTS.md section: ratios first, raw numbers after.
 * With more than one round, a summary over the rounds comes first and each round follows.
 */

export interface SwarmReportInput {
  m: Machine
  n: number
  sizeBytes: number
  sizeMiB: number
  pieceKiB: number
  upMbit: number
  seedUpMbit: number
  downMbit: number
  delayMs: number
  webSeed: boolean
  /** the index server's seeding.egressBudget given with --origin-budget (undefined: the server's default) */
  egressBudget?: number | undefined
  bound: Bound
  /** one entry per round, each the runs of every tool in that round */
  rounds: SwarmRun[][]
  /** the delay hub's closing counters, when there was a delay (dropped frames would bias the run) */
  hubLine?: string
}

const HEAD = ['tool', 'done', 'first s', 'median s', 'last s', 'last/bound', 'last/aria2c', 'origin egress/F', 'CPU-s/GiB recv', 'origin CPU-s']

export function swarmReport (r: SwarmReportInput): { text: string, markdown: string[] } {
  const rounds = r.rounds.map((runs) => ({ runs, metrics: roundMetrics(runs, r.bound, r.sizeBytes) }))
  const params = `N=${r.n} hosts (1 origin + ${r.n - 1} downloaders), F=${r.sizeMiB} MiB, piece ${r.pieceKiB} KiB, ` +
    `uplinks ${r.upMbit} Mbit/s (origin ${r.seedUpMbit}), downlinks ${r.downMbit > 0 ? `${r.downMbit} Mbit/s` : 'uncapped'}, delay ${r.delayMs} ms, imgdist web seed ${r.webSeed ? 'on' : 'off'}` +
    (r.egressBudget !== undefined ? `, imgdist origin egress budget ${r.egressBudget > 0 ? `${r.egressBudget} F` : 'none'}` : '')
  const boundLine = `Kumar–Ross bound T_min = ${r.bound.seconds.toFixed(2)} s (F/u_s ${r.bound.seedTerm.toFixed(2)}, F/d_min ${r.bound.downlinkTerm.toFixed(2)}, ` +
    `N'·F/(u_s+Σu_i) ${r.bound.swarmTerm.toFixed(2)}); HTTP from the origin alone cannot beat N'·F/u_s = ${r.bound.centralSeconds.toFixed(2)} s`
  const head = [params, boundLine, ...(r.hubLine !== undefined ? [r.hubLine] : [])]
  const rawTitle = 'Raw (seconds since the downloaders started; CPU = user+system of the downloader process when it was complete; ' +
    'egress = bytes of Ethernet frames sent by the origin namespace until the last completion, headers included):'
  const markdown = [`## bench:swarm ${r.m.date}${rounds.length > 1 ? ` (${rounds.length} rounds)` : ''}`, '', ...machineLines(r.m), ...head.map((l) => `- ${l}`), '']
  const text = [...head, '']
  const summary = rounds.length > 1 ? summaryRows(rounds.map((x) => x.metrics)) : undefined
  // RESULTS.md opens with the summary; the terminal ends with it, where it is still on screen
  if (summary !== undefined) markdown.push(SUMMARY_NOTE, '', ...markdownTable(SUMMARY_HEAD, summary), '')
  rounds.forEach(({ runs, metrics }, k) => {
    const rows = tableRows(runs, metrics)
    const raw = rawLines(runs)
    if (rounds.length > 1) { markdown.push(`### round ${k + 1} of ${rounds.length}`, ''); text.push(`round ${k + 1} of ${rounds.length}:`) }
    markdown.push(...markdownTable(HEAD, rows), '', rawTitle, '', ...raw, '')
    text.push(textTable(HEAD, rows), '', ...raw, '')
  })
  if (summary !== undefined) text.push(SUMMARY_NOTE, '', textTable(SUMMARY_HEAD, summary))
  return { text: text.join('\n').trimEnd(), markdown: trimEnd(markdown) }
}

function tableRows (runs: SwarmRun[], metrics: Map<SwarmRun, RunMetrics>): string[][] {
  return runs.map((run) => {
    const x = metrics.get(run)
    if (x === undefined) return [run.tool, 'skipped', '—', '—', '—', '—', '—', '—', '—', '—']
    return [
      run.tool, `${x.done}/${x.downloaders}`, fmt(x.first), fmt(x.median), fmt(x.last),
      fmt(x.lastPerBound, 2), fmt(x.lastPerAria2, 2), fmt(x.egressPerF, 2), fmt(x.cpuPerGiB, 2), fmt(x.originCpu, 1)
    ]
  })
}

function rawLines (runs: SwarmRun[]): string[] {
  const raw: string[] = []
  for (const run of runs) {
    if (run.skipped !== undefined) { raw.push(`- ${run.tool}: skipped: ${run.skipped}`); continue }
    const per = run.downloaders.map((d) => `h${d.host} ${d.seconds !== undefined ? `${d.seconds.toFixed(2)}s` : 'not done'}` +
      `${d.cpuSeconds !== undefined ? ` cpu ${d.cpuSeconds.toFixed(2)}s` : ''}${d.systemSeconds !== undefined ? ` (sys ${d.systemSeconds.toFixed(2)})` : ''}${d.ok === false ? ' BAD-HASH' : d.ok === true ? '' : ' unverified'}`)
    raw.push(`- ${run.tool}: ${per.join('; ')}; origin egress ${run.originEgressBytes ?? '—'} bytes (${fmt((run.originEgressBytes ?? NaN) / 2 ** 20)} MiB), origin CPU ${fmt(run.originCpuSeconds, 2)} s`)
    for (const note of run.notes) raw.push(`  - note: ${note}`)
  }
  return raw
}

function trimEnd (lines: string[]): string[] {
  const out = [...lines]
  while (out.at(-1) === '') out.pop()
  return out
}
