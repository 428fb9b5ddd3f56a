import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { tryRun } from './proc.js'

/** Machine and code identity, table formatting, and appending a section to bench/RESULTS.md. */

/** dist/bench/report.js → <repo>/bench/RESULTS.md (the benches run from dist/). */
export const RESULTS_PATH = fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url))
export const REPO_DIR = fileURLToPath(new URL('../../', import.meta.url))

export interface Machine { nproc: number, cpuModel: string, kernel: string, memGiB: number, load: string, date: string, commit: string }

export function machine (): Machine {
  const head = tryRun('git', ['-C', REPO_DIR, 'rev-parse', '--short', 'HEAD'])?.trim() ?? 'unknown'
  const dirty = (tryRun('git', ['-C', REPO_DIR, 'status', '--porcelain']) ?? '').trim() !== ''
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    kernel: tryRun('uname', ['-r'])?.trim() ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    load: loadavg().map((l) => l.toFixed(2)).join(' '),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: dirty ? `${head} (uncommitted changes)` : head
  }
}

export function machineLines (m: Machine): string[] {
  return [
    `- date: ${m.date}; commit: ${m.commit}`,
    `- machine: ${m.nproc} × ${m.cpuModel}, ${m.memGiB} GiB RAM, Linux ${m.kernel}; load average at start: ${m.load}`
  ]
}

export function markdownTable (head: string[], rows: string[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`)
  ]
}

/** The same table, aligned for a terminal. */
export function textTable (head: string[], rows: string[][]): string {
  const all = [head, ...rows]
  const w = head.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  return all.map((r) => r.map((x, c) => x.padEnd(w[c] ?? 0)).join('  ').trimEnd()).join('\n')
}

export function appendResults (lines: string[], path = RESULTS_PATH): void {
  if (!existsSync(path)) {
    writeFileSync(path, '# Benchmark results\n\nAppended by `npm run bench:swarm`, `bench:pair` and `bench:memory` (see README.md).\n' +
      'Each section is one run, exactly as measured; older sections are kept for comparison.\n')
  }
  const prev = readFileSync(path, 'utf8')
  appendFileSync(path, (prev.endsWith('\n') ? '\n' : '\n\n') + lines.join('\n') + '\n')
}

export const fmt = (x: number | undefined, digits = 1): string => x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits)

export function median (xs: number[]): number | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}
