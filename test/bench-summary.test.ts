import t from 'tap'
import { kumarRossBound } from '../bench/kumar-ross.js'
import type { Machine } from '../bench/report.js'
import type { SwarmRun } from '../bench/runners/swarm-run.js'
import { swarmReport, type SwarmReportInput } from '../bench/swarm-report.js'
import { spread } from '../bench/swarm-summary.js'

// bench:swarm --rounds: made-up runs of 2 downloaders and a 1 GiB file (so CPU-s/GiB = CPU-s).
const GiB = 2 ** 30
const bound = kumarRossBound({ fileBytes: GiB, seedUpBps: 8 * 2 ** 30 / 10, peerUpBps: [1e12, 1e12] }) // 10 s
const m: Machine = { nproc: 2, cpuModel: 'test', kernel: 'k', memGiB: 1, load: '0', date: '2026-11-22T00:00:00Z', commit: 'abc' }

function run (tool: string, secs: Array<number | undefined>, cpu: number, egress = GiB): SwarmRun {
  return { tool, notes: [], originEgressBytes: egress, originCpuSeconds: 1, downloaders: secs.map((s, i) => ({ host: i + 1, seconds: s, cpuSeconds: s === undefined ? undefined : cpu, ok: s !== undefined })) }
}

function input (rounds: SwarmRun[][]): SwarmReportInput {
  return { m, n: 3, sizeBytes: GiB, sizeMiB: 1024, pieceKiB: 1024, upMbit: 100, seedUpMbit: 100, downMbit: 0, delayMs: 0, webSeed: false, bound, rounds }
}

t.test('the bound of the fixture is 10 s', async (t) => { t.equal(bound.seconds, 10) })

t.test('one round: one table, no summary, the layout of every earlier RESULTS.md section', async (t) => {
  const { text, markdown } = swarmReport(input([[run('imgdist', [11, 12], 3), run('aria2c', [14, 15], 2)]]))
  t.equal(markdown[0], '## bench:swarm 2026-11-22T00:00:00Z')
  t.notMatch(text, /median \(min–max\)/)
  t.notMatch(markdown.join('\n'), /### round/)
  t.match(markdown.join('\n'), /\| imgdist \| 2\/2 \| 11\.0 \| 11\.5 \| 12\.0 \| 1\.20 \| 0\.80 \| 1\.00 \| 3\.00 \| 1\.0 \|/)
})

t.test('three rounds: medians with their range, ratios to aria2c within each round', async (t) => {
  const rounds = [
    [run('imgdist', [12, 12], 3), run('aria2c', [15, 15], 2)], // 1.20 bound, 0.80 aria2c, CPU 1.5×
    [run('imgdist', [13, 13], 4), run('aria2c', [13, 13], 2)], // a slow round for imgdist: 1.30, 1.00, 2×
    // a fast hour for both: 1.10 and 0.55; imgdist's egress 2 F
    [run('imgdist', [11, 11], 2, 2 * GiB), run('aria2c', [20, 20], 2)]
  ]
  const { text, markdown } = swarmReport(input(rounds))
  const md = markdown.join('\n')
  t.equal(markdown[0], '## bench:swarm 2026-11-22T00:00:00Z (3 rounds)')
  t.match(md, '| imgdist | 3/3 | 1.20 (1.10–1.30) | 0.80 (0.55–1.00) | 1.00 (1.00–2.00) | 3.00 (2.00–4.00) | 1.50 (1.00–2.00) |')
  t.match(md, '| aria2c | 3/3 | 1.50 (1.30–2.00) | 1.00 (1.00–1.00) |')
  t.match(md, '### round 1 of 3')
  t.match(md, '### round 3 of 3')
  t.ok(md.indexOf('median (min–max)') < md.indexOf('### round 1'), 'the summary comes before the rounds')
  t.match(text, /round 2 of 3:/)
  t.ok(text.indexOf('round 3 of 3:') < text.indexOf('median (min–max)'), 'on the terminal, the summary comes last, where it is still on screen')
})

t.test('a round where a downloader did not finish has no last time and is left out of the summary', async (t) => {
  const rounds = [
    [run('imgdist', [12, 12], 3), run('aria2c', [15, 15], 2)],
    [run('imgdist', [12, undefined], 3), run('aria2c', [15, 15], 2)]
  ]
  const md = swarmReport(input(rounds)).markdown.join('\n')
  t.match(md, '| imgdist | 1/2 | 1.20 | 0.80 |')
  t.match(md, '| imgdist | 1/2 | 12.0 | 12.0 | — | — | — |', "round 2's own table")
})

t.test('spread()', async (t) => {
  t.equal(spread([]), '—')
  t.equal(spread([1.234]), '1.23')
  t.equal(spread([3, 1, 2]), '2.00 (1.00–3.00)')
  t.equal(spread([1, 2]), '1.50 (1.00–2.00)')
})
