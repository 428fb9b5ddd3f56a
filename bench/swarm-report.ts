import type { Bound } from './kumar-ross.js'
import { fmt, machineLines, markdownTable, median, textTable, type Machine } from './report.js'
import type { SwarmRun } from './runners/swarm-run.js'

/** The swarm run as a terminal table and as a RESULTS.md section: ratios first, raw numbers after. */

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
  bound: Bound
  runs: SwarmRun[]
  /** the delay hub's closing counters, when there was a delay (dropped frames would bias the run) */
  hubLine?: string
}

const HEAD = ['tool', 'done', 'first s', 'median s', 'last s', 'last/bound', 'last/aria2c', 'origin egress/F', 'CPU-s/GiB recv', 'origin CPU-s']

export function swarmReport (r: SwarmReportInput): { text: string, markdown: string[] } {
  const gib = r.sizeBytes / 2 ** 30
  const aria2Last = lastOf(r.runs.find((x) => x.tool === 'aria2c'))
  const rows = r.runs.map((run) => {
    if (run.skipped !== undefined) return [run.tool, 'skipped', '—', '—', '—', '—', '—', '—', '—', '—']
    const times = doneTimes(run)
    const last = lastOf(run)
    const cpus = run.downloaders.filter((d) => d.seconds !== undefined && d.cpuSeconds !== undefined).map((d) => d.cpuSeconds as number)
    const cpuPerGiB = cpus.length > 0 ? cpus.reduce((a, x) => a + x, 0) / (cpus.length * gib) : undefined
    return [
      run.tool,
      `${times.length}/${run.downloaders.length}`,
      fmt(times[0]), fmt(median(times)), fmt(last),
      fmt(last !== undefined ? last / r.bound.seconds : undefined, 2),
      fmt(last !== undefined && aria2Last !== undefined ? last / aria2Last : undefined, 2),
      fmt(run.originEgressBytes !== undefined ? run.originEgressBytes / r.sizeBytes : undefined, 2),
      fmt(cpuPerGiB, 2),
      fmt(run.originCpuSeconds, 1)
    ]
  })
  const params = `N=${r.n} hosts (1 origin + ${r.n - 1} downloaders), F=${r.sizeMiB} MiB, piece ${r.pieceKiB} KiB, ` +
    `uplinks ${r.upMbit} Mbit/s (origin ${r.seedUpMbit}), downlinks ${r.downMbit > 0 ? `${r.downMbit} Mbit/s` : 'uncapped'}, delay ${r.delayMs} ms, imgdist web seed ${r.webSeed ? 'on' : 'off'}`
  const boundLine = `Kumar–Ross bound T_min = ${r.bound.seconds.toFixed(2)} s (F/u_s ${r.bound.seedTerm.toFixed(2)}, F/d_min ${r.bound.downlinkTerm.toFixed(2)}, ` +
    `N'·F/(u_s+Σu_i) ${r.bound.swarmTerm.toFixed(2)}); HTTP from the origin alone cannot beat N'·F/u_s = ${r.bound.centralSeconds.toFixed(2)} s`
  const raw: string[] = []
  for (const run of r.runs) {
    if (run.skipped !== undefined) { raw.push(`- ${run.tool}: skipped: ${run.skipped}`); continue }
    const per = run.downloaders.map((d) => `h${d.host} ${d.seconds !== undefined ? `${d.seconds.toFixed(2)}s` : 'not done'}` +
      `${d.cpuSeconds !== undefined ? ` cpu ${d.cpuSeconds.toFixed(2)}s` : ''}${d.systemSeconds !== undefined ? ` (sys ${d.systemSeconds.toFixed(2)})` : ''}${d.ok === false ? ' BAD-HASH' : d.ok === true ? '' : ' unverified'}`)
    raw.push(`- ${run.tool}: ${per.join('; ')}; origin egress ${run.originEgressBytes ?? '—'} bytes (${fmt((run.originEgressBytes ?? NaN) / 2 ** 20)} MiB), origin CPU ${fmt(run.originCpuSeconds, 2)} s`)
    for (const note of run.notes) raw.push(`  - note: ${note}`)
  }
  const markdown = [
    `## bench:swarm ${r.m.date}`,
    '',
    ...machineLines(r.m),
    `- parameters: ${params}`,
    `- ${boundLine}`,
    ...(r.hubLine !== undefined ? [`- ${r.hubLine}`] : []),
    '',
    ...markdownTable(HEAD, rows),
    '',
    'Raw (seconds since the downloaders started; CPU = user+system of the downloader process when it was complete; ' +
    'egress = bytes of Ethernet frames sent by the origin namespace until the last completion, headers included):',
    '',
    ...raw
  ]
  const text = [params, boundLine, ...(r.hubLine !== undefined ? [r.hubLine] : []), '', textTable(HEAD, rows), '', ...raw].join('\n')
  return { text, markdown }
}

function doneTimes (run: SwarmRun): number[] {
  return run.downloaders.map((d) => d.seconds).filter((s): s is number => s !== undefined).sort((a, b) => a - b)
}

/** the last completion, only if every downloader completed (else the run has no "last") */
function lastOf (run: SwarmRun | undefined): number | undefined {
  if (run === undefined || run.skipped !== undefined) return undefined
  const t = doneTimes(run)
  return t.length === run.downloaders.length ? t[t.length - 1] : undefined
}
