import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { num, parseFlags } from './args.js'
import { makeBenchImage } from './fixture.js'
import { kumarRossBound } from './kumar-ross.js'
import { Testbed } from './netns.js'
import { cleanupOnExit, killLive, removeBigFiles, tryRun } from './proc.js'
import { appendResults, machine } from './report.js'
import { runAria2 } from './runners/aria2.js'
import { runHttp } from './runners/http.js'
import { runImgdist } from './runners/imgdist.js'
import { runLibtorrent } from './runners/libtorrent.js'
import type { SwarmContext, SwarmRun } from './runners/swarm-run.js'
import { swarmReport } from './swarm-report.js'

/**
 * npm run bench:swarm -- [--n 8] [--size-mib 128] …: one origin and N−1 downloaders, each in its
 * own network namespace with a shaped uplink; imgdist, aria2c and plain HTTP in the same run.
 */

const USAGE = `usage: bench:swarm -- [--n 8] [--size-mib 128] [--up-mbit 100] [--seed-up-mbit 100] [--down-mbit 0]
  [--delay-ms 0] [--piece-kib 1024] [--only imgdist,imgdist-warm,aria2,libtorrent,http] (default imgdist,imgdist-warm,aria2,http) [--timeout-s auto] [--work-dir /tmp/imgdist-bench/swarm]
  [--rounds 1] [--web-seed true] [--origin-budget B] [--no-append true] [--results bench/RESULTS.md]   (needs root, iproute2, tc; aria2c and curl for those runs)
  --origin-budget B: the index server's seeding.egressBudget, in copies of the image (0: no limit; default: the server's default)
  --rounds K: run every tool K times, in turns (round 1: each tool in --only order, then round 2, …); the table then
  gives each ratio's median over the rounds with its range, and every round's own table follows
  --delay-ms D: every frame reaches its host D ms late (round trip 2·D), through bench/delay-hub.c, which needs a C compiler;
  not with --down-mbit`

const TOOLS = ['imgdist', 'imgdist-warm', 'aria2', 'libtorrent', 'http'] as const
const DEFAULT_TOOLS = 'imgdist,imgdist-warm,aria2,http'
type Tool = typeof TOOLS[number]

async function main (): Promise<number> {
  const f = parseFlags(process.argv.slice(2), {
    n: '8', 'size-mib': '128', 'up-mbit': '100', 'seed-up-mbit': '', 'down-mbit': '0', 'delay-ms': '0', 'piece-kib': '1024',
    only: DEFAULT_TOOLS, rounds: '1', 'timeout-s': 'auto', 'work-dir': '/tmp/imgdist-bench/swarm', 'no-append': 'false', results: '', 'web-seed': 'false',
    'origin-budget': ''
  }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  const n = num(f, 'n', 2, 60)
  const sizeMiB = num(f, 'size-mib', 1, 64 * 1024)
  const upMbit = num(f, 'up-mbit', 1, 100_000)
  const seedUpMbit = f['seed-up-mbit'] === '' ? upMbit : num(f, 'seed-up-mbit', 1, 100_000)
  const downMbit = num(f, 'down-mbit', 0, 100_000)
  const delayMs = num(f, 'delay-ms', 0, 10_000)
  const pieceKiB = num(f, 'piece-kib', 16, 16 * 1024)
  const roundCount = num(f, 'rounds', 1, 50)
  if (!Number.isInteger(roundCount)) { console.error(`--rounds: expected a whole number, got ${f.rounds}\n${USAGE}`); return 2 }
  if (delayMs > 0 && downMbit > 0) { console.error(`--delay-ms and --down-mbit cannot be used together (the delay hub has no downlink qdisc)\n${USAGE}`); return 2 }
  const only = [...new Set(f.only.split(',').map((s) => s.trim()).filter(Boolean))]
  for (const t of only) if (!(TOOLS as readonly string[]).includes(t)) { console.error(`--only: unknown tool "${t}" (${TOOLS.join(', ')})\n${USAGE}`); return 2 }
  if (process.getuid?.() !== 0) { console.error('bench:swarm needs root (network namespaces and tc)'); return 2 }
  for (const tool of ['ip', 'tc']) if (tryRun('which', [tool]) === undefined) { console.error(`bench:swarm needs ${tool} (apt-get install iproute2)`); return 2 }

  const size = Math.round(sizeMiB * 1024 * 1024)
  const bound = kumarRossBound({
    fileBytes: size,
    seedUpBps: seedUpMbit * 1e6,
    peerUpBps: Array(n - 1).fill(upMbit * 1e6),
    peerDownBps: downMbit > 0 ? Array(n - 1).fill(downMbit * 1e6) : undefined
  })
  // plain HTTP needs about the central time; give every run that and a margin
  const timeoutS = f['timeout-s'] === 'auto' ? Math.ceil(bound.centralSeconds * 2 + 60) : num(f, 'timeout-s', 1)
  const distDir = fileURLToPath(new URL('../', import.meta.url))
  const work = f['work-dir']
  const bed = new Testbed({ hosts: n, upMbit: [seedUpMbit, ...Array(n - 1).fill(upMbit)], downMbit, delayMs, workDir: work })
  const m = machine()
  const cleanup = (): void => { killLive(); bed.teardown() }
  cleanupOnExit(cleanup)

  console.log(`bench:swarm N=${n} (${n - 1} downloaders) F=${sizeMiB} MiB piece=${pieceKiB} KiB up=${upMbit} seed-up=${seedUpMbit} down=${downMbit || 'uncapped'} Mbit/s delay=${delayMs} ms; ` +
    `Kumar–Ross bound ${bound.seconds.toFixed(2)} s; timeout ${timeoutS} s per tool`)
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  const originPort = 8080
  const image = await makeBenchImage({
    dir: join(work, 'catalogue'), id: 'bench-image', size, pieceLength: pieceKiB * 1024,
    announce: [`http://${bed.ip(0)}:${originPort}/announce`]
  })
  await bed.setup()
  const rounds: SwarmRun[][] = []
  const webSeed = f['web-seed'] === 'true'
  const egressBudget = f['origin-budget'] === '' ? undefined : num(f, 'origin-budget', 0, 1000)
  const runners: Record<Tool, (c: SwarmContext) => Promise<SwarmRun>> = {
    imgdist: async (c) => await runImgdist(c, { webSeed, egressBudget }),
    'imgdist-warm': async (c) => await runImgdist(c, { webSeed, warm: true, egressBudget }),
    aria2: runAria2,
    libtorrent: runLibtorrent,
    http: runHttp
  }
  for (let k = 1; k <= roundCount; k++) {
    const runs: SwarmRun[] = []
    rounds.push(runs)
    if (roundCount > 1) console.log(`round ${k} of ${roundCount}`)
    // in the order given: a tool that runs after another gets the page cache the other just freed
    for (const tool of only as Tool[]) {
      const toolWork = roundCount > 1 ? join(work, `round-${k}`, tool) : join(work, tool)
      await mkdir(toolWork, { recursive: true })
      const ctx: SwarmContext = {
        bed, image, work: toolWork, downloaders: Array.from({ length: n - 1 }, (_, i) => i + 1),
        timeoutMs: timeoutS * 1000, originPort, distDir, log: (s) => { console.log(`  [${tool}] ${s}`) }
      }
      console.log(`-- ${tool} …`)
      runs.push(await runTool(tool, runners[tool], ctx, bed, delayMs))
      // the next tool gets clean disks; logs, the image and the catalogue stay
      await removeBigFiles(toolWork)
    }
  }
  const hubLine = await bed.delayHub?.stop()
  const { text, markdown } = swarmReport({ m, n, webSeed, egressBudget, sizeBytes: size, sizeMiB, pieceKiB, upMbit, seedUpMbit, downMbit, delayMs, bound, rounds, hubLine })
  console.log('\n' + text)
  if (f['no-append'] !== 'true') appendResults(markdown, f.results !== '' ? f.results : undefined)
  return rounds.flat().some((r) => r.skipped === undefined && r.downloaders.some((d) => d.ok !== true)) ? 1 : 0
}

/** One tool's run; a runner that throws becomes a run with nothing done and the error as a note. */
async function runTool (tool: Tool, runner: (c: SwarmContext) => Promise<SwarmRun>, ctx: SwarmContext, bed: Testbed, delayMs: number): Promise<SwarmRun> {
  let r: SwarmRun
  const hubCpu0 = bed.delayHub?.cpuSeconds()
  try { r = await runner(ctx) } catch (err) {
    r = { tool, notes: [`failed: ${(err as Error).message}`], downloaders: ctx.downloaders.map((h) => ({ host: h })) }
  }
  const hubCpu1 = bed.delayHub?.cpuSeconds()
  if (hubCpu0 !== undefined && hubCpu1 !== undefined) {
    r.notes.push(`delay hub (bench/delay-hub.c, the user-space forwarder that adds the ${delayMs} ms; it shares the two cores with the hosts): ${(hubCpu1 - hubCpu0).toFixed(2)} CPU-s during this tool's run`)
  }
  if (r.skipped !== undefined) console.log(`   ${r.skipped}`)
  return r
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  console.error(`bench:swarm: ${(err as Error).message}`)
  process.exitCode = 1
}).finally(() => { killLive() })
