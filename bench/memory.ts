import { existsSync, statfsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { num, parseFlags } from './args.js'
import { makeBenchImage, sha512OfFile } from './fixture.js'
import { agentImage, agentTargetDir, spawnAgent, startIndexOrigin, writeAgentConfig, type AgentSpec } from './imgdist-procs.js'
import { loopbackBenchHost } from './netns.js'
import { cpuSeconds, killLive, removeBigFiles, rssKiB, sleep, stopAll, type Proc } from './proc.js'
import { choosePieceLength } from '../lib/torrent-meta.js'
import { appendResults, fmt, machine, machineLines, markdownTable, textTable } from './report.js'

/**
 * npm run bench:memory -- [--size-gib 4]: the agent's resident memory (VmRSS, every 200 ms) while
 * it downloads, verifies and registers an image of random bytes from the index server's origin
 * seed on the loopback of a namespace of its own.
 */

const USAGE = 'usage: bench:memory -- [--size-gib 4] [--timeout-s 1800] [--work-dir /tmp/imgdist-bench/memory] [--no-append true] [--results bench/RESULTS.md]'

async function main (): Promise<number> {
  const f = parseFlags(process.argv.slice(2), { 'size-gib': '4', 'timeout-s': '1800', 'work-dir': '/tmp/imgdist-bench/memory', 'no-append': 'false', results: '' }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  const sizeGiB = num(f, 'size-gib', 0.001, 64)
  const timeoutMs = num(f, 'timeout-s', 1) * 1000
  if (process.getuid?.() !== 0) { console.error('bench:memory needs root (it runs in a network namespace of its own)'); return 2 }
  const distDir = fileURLToPath(new URL('../', import.meta.url))
  if (!existsSync(join(distDir, 'bin', 'imgdist-agent.js')) || !existsSync(join(distDir, 'bin', 'imgdist-index.js'))) { console.error('imgdist: not built yet (npm run build)'); return 1 }
  const work = f['work-dir']
  const size = Math.round(sizeGiB * 2 ** 30)
  await mkdir(work, { recursive: true })
  // the image, the index's copy, the agent's cache and the target's copy: four times the size
  const fs = statfsSync(work)
  const free = fs.bavail * fs.bsize
  if (free < 4.2 * size) { console.error(`bench:memory: ${work} has ${(free / 2 ** 30).toFixed(1)} GiB free, needs about ${(4.2 * size / 2 ** 30).toFixed(1)} GiB for a ${sizeGiB} GiB image: use a smaller --size-gib`); return 2 }
  const host = loopbackBenchHost('imgb-mem')
  const m = machine()
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  console.log(`bench:memory: writing a ${sizeGiB} GiB image of random bytes …`)
  const image = await makeBenchImage({ dir: join(work, 'catalogue'), id: 'bench-image', size, pieceLength: choosePieceLength(size), announce: ['http://127.0.0.1:8080/announce'] })
  host.setup()
  const procs: Proc[] = []
  try {
    console.log('bench:memory: starting the index server (it verifies and seeds the image) …')
    const server = await startIndexOrigin({ distDir, exec: host.exec, host: '127.0.0.1', port: 8080, work, image, webSeed: false, torrentPort: 6881 })
    procs.push(server)
    const a: AgentSpec = { distDir, exec: host.exec, dir: join(work, 'agent'), site: 'memory', indexUrl: 'http://127.0.0.1:8080/v1/index.yaml', image, api: '127.0.0.1:7800', torrentPort: 6882 }
    await writeAgentConfig(a)
    const t0 = performance.now()
    const agent = spawnAgent(a)
    procs.push(agent)
    console.log('bench:memory: agent started; sampling VmRSS every 200 ms …')
    const sidecar = join(agentTargetDir(a), `${image.id}.json`)
    const agentRss: number[] = []
    const seedRss: number[] = []
    let lastPrint = 0
    let phase = ''
    const phases: string[] = []
    while (!existsSync(sidecar) && agent.exitedAt === undefined && performance.now() - t0 < timeoutMs) {
      const r = rssKiB(agent.pid)
      if (r !== undefined) agentRss.push(r)
      const s = rssKiB(server.pid)
      if (s !== undefined) seedRss.push(s)
      if (performance.now() - lastPrint > 5000) {
        lastPrint = performance.now()
        const e = agentImage(host.exec, a.api, image.id)
        const state = typeof e?.state === 'string' ? e.state : '?'
        if (state !== phase) { phase = state; phases.push(`${state}@${((performance.now() - t0) / 1000).toFixed(0)}s`) }
        console.log(`  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${state} ${typeof e?.progress === 'number' ? (e.progress * 100).toFixed(0) : '?'} %, agent RSS ${((r ?? 0) / 1024).toFixed(0)} MiB`)
      }
      await sleep(200)
    }
    const seconds = (performance.now() - t0) / 1000
    const agentCpu = cpuSeconds(agent.pid)
    const registered = existsSync(sidecar)
    await stopAll(procs)
    const ok = registered && await sha512OfFile(join(agentTargetDir(a), `${image.id}.img`)).catch(() => '') === image.sha512
    const head = ['process', 'samples', 'max RSS MiB', 'p95 RSS MiB', 'median RSS MiB']
    const row = (name: string, xs: number[]): string[] => [name, String(xs.length), fmt(pct(xs, 1) / 1024, 0), fmt(pct(xs, 0.95) / 1024, 0), fmt(pct(xs, 0.5) / 1024, 0)]
    const rows = [row('imgdist-agent (downloading)', agentRss), row('imgdist-index (seeding)', seedRss)]
    const params = `image ${sizeGiB} GiB of random bytes (${size} bytes), piece ${image.pieceLength / 2 ** 20} MiB, index seed → one agent on one namespace's loopback`
    const outcome = `${registered ? `registered after ${seconds.toFixed(1)} s` : `NOT registered after ${seconds.toFixed(1)} s`}; sha512 ${ok ? 'ok' : 'FAIL'}; agent CPU ${fmt(agentCpu, 1)} s; states seen (5 s polls): ${phases.join(', ')}`
    console.log(`\n${params}\n${outcome}\n\n${textTable(head, rows)}`)
    if (f['no-append'] !== 'true') {
      appendResults([`## bench:memory ${m.date}`, '', ...machineLines(m), `- parameters: ${params}`, `- outcome: ${outcome}`, '', ...markdownTable(head, rows), '',
        'RSS = VmRSS from /proc/<pid>/status, sampled every 200 ms from the agent\'s start until its directory target held the registered image.'], f.results !== '' ? f.results : undefined)
    }
    return ok ? 0 : 1
  } finally {
    await stopAll(procs)
    await removeBigFiles(work)
  }
}

function pct (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  console.error(`bench:memory: ${(err as Error).message}`)
  process.exitCode = 1
}).finally(() => { killLive() })
