import { existsSync, readFileSync } from 'node:fs'
import { link, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { num, parseFlags } from './args.js'
import { makeBenchImage, sha512OfFile, type BenchImage } from './fixture.js'
import { agentImage, agentTargetDir, spawnAgent, startIndexOrigin, writeAgentConfig, type AgentSpec } from './imgdist-procs.js'
import { LoopbackHost } from './netns.js'
import { cleanupOnExit, cpuSeconds, killLive, removeBigFiles, sleep, start, stopAll, waitUntil, type Proc } from './proc.js'
import { appendResults, fmt, machine, machineLines, markdownTable, textTable } from './report.js'

/**
 * npm run bench:pair -- [--size-mib 512]: one seeder, one downloader, on the loopback of a
 * namespace of its own (no port clashes with anything else on the machine): imgdist (index
 * server's origin seed → agent), aria2c → aria2c, and curl from python3's http.server and from
 * the index server's /v1/images.
 */

const USAGE = 'usage: bench:pair -- [--size-mib 512] [--piece-kib 1024] [--only http,aria2,imgdist] [--timeout-s 600] [--work-dir /tmp/imgdist-bench/pair] [--no-append true] [--results bench/RESULTS.md]'

interface PairRow { tool: string, seconds?: number, leechCpu?: number, seedCpu?: number, ok: boolean, note?: string }

const A2 = ['--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false', '--disable-ipv6=true',
  '--file-allocation=none', '--console-log-level=warn', '--summary-interval=0', '--allow-overwrite=true', '--auto-save-interval=0']

async function main (): Promise<number> {
  const f = parseFlags(process.argv.slice(2), { 'size-mib': '512', 'piece-kib': '1024', only: 'http,aria2,imgdist', 'timeout-s': '600', 'work-dir': '/tmp/imgdist-bench/pair', 'no-append': 'false', results: '' }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  const sizeMiB = num(f, 'size-mib', 1, 64 * 1024)
  const pieceKiB = num(f, 'piece-kib', 16, 16 * 1024)
  const timeoutMs = num(f, 'timeout-s', 1) * 1000
  if (process.getuid?.() !== 0) { console.error('bench:pair needs root (it runs in a network namespace of its own)'); return 2 }
  const distDir = fileURLToPath(new URL('../', import.meta.url))
  const work = f['work-dir']
  const host = new LoopbackHost('imgb-pair')
  const m = machine()
  const cleanup = (): void => { killLive(); host.teardown() }
  cleanupOnExit(cleanup)
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  const image = await makeBenchImage({ dir: join(work, 'catalogue'), id: 'bench-image', size: sizeMiB * 2 ** 20, pieceLength: pieceKiB * 1024, announce: ['http://127.0.0.1:8080/announce'] })
  host.setup()
  const rows: PairRow[] = []
  const step = async (name: string, fn: () => Promise<PairRow[]>): Promise<void> => {
    console.log(`-- ${name} …`)
    try { rows.push(...await fn()) } catch (err) { rows.push({ tool: name, ok: false, note: `failed: ${(err as Error).message}` }) }
    await removeBigFiles(join(work, name)) // the next tool gets the disk space back; logs stay
  }
  const c: PairCtx = { host, image, work, distDir, timeoutMs }
  const only = f.only.split(',')
  if (only.includes('http')) await step('http', async () => await pairHttp(c))
  if (only.includes('aria2')) await step('aria2', async () => await pairAria2(c))
  if (!only.includes('imgdist')) { /* not asked for */ } else if (existsSync(join(distDir, 'agent', 'bin.js')) && existsSync(join(distDir, 'index-server', 'bin.js'))) await step('imgdist', async () => await pairImgdist(c))
  else rows.push({ tool: 'imgdist', ok: false, note: 'imgdist: not built yet' })

  const gib = image.size / 2 ** 30
  const head = ['tool', 'wall s', 'MiB/s', 'downloader CPU-s/GiB', 'seeder CPU-s/GiB', 'sha512']
  const table = rows.map((r) => [r.tool, fmt(r.seconds, 2), fmt(r.seconds !== undefined ? sizeMiB / r.seconds : undefined, 0),
    fmt(r.leechCpu !== undefined ? r.leechCpu / gib : undefined, 2), fmt(r.seedCpu !== undefined ? r.seedCpu / gib : undefined, 2), r.ok ? 'ok' : 'FAIL'])
  const notes = rows.filter((r) => r.note !== undefined).map((r) => `- ${r.tool}: ${r.note as string}`)
  const params = `F=${sizeMiB} MiB random bytes, piece ${pieceKiB} KiB, one namespace's loopback, page cache warm`
  console.log(`\n${params}\n\n${textTable(head, table)}\n${notes.join('\n')}`)
  if (f['no-append'] !== 'true') {
    appendResults([`## bench:pair ${m.date}`, '', ...machineLines(m), `- parameters: ${params}`, '',
      ...markdownTable(head, table), '',
      'wall s = from starting the downloader process until it had the whole file (curl, aria2c: the process exits; imgdist: until the agent registered the verified image, so it includes start-up, catalogue fetch, sha512 check and the copy into the directory target). CPU = user+system.',
      '', ...notes], f.results !== '' ? f.results : undefined)
  }
  return rows.every((r) => r.ok) ? 0 : 1
}

interface PairCtx { host: LoopbackHost, image: BenchImage, work: string, distDir: string, timeoutMs: number }

/** user+system CPU from a `/usr/bin/time -f '%U %S'` output file */
function timeFile (path: string): number | undefined {
  try {
    const [u, s] = readFileSync(path, 'utf8').trim().split('\n').pop()?.split(' ').map(Number) ?? []
    return u !== undefined && s !== undefined ? u + s : undefined
  } catch { return undefined }
}

/** Runs one downloader to its exit under /usr/bin/time; the seeder's CPU is counted over the same span. */
async function timedDownload (c: PairCtx, dir: string, label: string, seeder: Proc | undefined, argv: string[], file: string): Promise<PairRow> {
  const slug = label.replace(/[^a-z0-9]+/gi, '-')
  const tf = join(dir, `${slug}.time`)
  const seed0 = seeder !== undefined ? cpuSeconds(seeder.pid) : undefined
  const t0 = performance.now()
  const p = start(label, 'ip', [...c.host.exec, '/usr/bin/time', '-f', '%U %S', '-o', tf, ...argv], join(dir, `${slug}.log`))
  const timer = setTimeout(() => p.child.kill('SIGTERM'), c.timeoutMs)
  const code = await p.exited
  clearTimeout(timer)
  const seconds = ((p.exitedAt ?? performance.now()) - t0) / 1000
  const seedCpu = seeder !== undefined && seed0 !== undefined ? (cpuSeconds(seeder.pid) ?? NaN) - seed0 : undefined
  const ok = code === 0 && await sha512OfFile(file).catch(() => '') === c.image.sha512
  return { tool: label, seconds: code === 0 ? seconds : undefined, leechCpu: timeFile(tf), seedCpu, ok, note: code === 0 ? undefined : `exit code ${String(code)}` }
}

async function pairHttp (c: PairCtx): Promise<PairRow[]> {
  const dir = join(c.work, 'http')
  await mkdir(join(dir, 'www'), { recursive: true })
  await link(c.image.path, join(dir, 'www', c.image.id))
  const server = start('http.server', 'ip', [...c.host.exec, '/usr/bin/python3', '-m', 'http.server', '8081', '--bind', '127.0.0.1', '--directory', join(dir, 'www')], join(dir, 'server.log'))
  try {
    if (!await waitUntil(() => c.host.listening(8081), 15_000)) throw new Error('python3 http.server did not start')
    const out = join(dir, 'got')
    return [await timedDownload(c, dir, 'curl ← python3 http.server', server, ['curl', '-sS', '--fail', '-o', out, `http://127.0.0.1:8081/${c.image.id}`], out)]
  } finally { await stopAll([server]) }
}

async function pairAria2 (c: PairCtx): Promise<PairRow[]> {
  const dir = join(c.work, 'aria2')
  await mkdir(join(dir, 'seed'), { recursive: true })
  await link(c.image.path, join(dir, 'seed', c.image.id))
  const procs: Proc[] = []
  try {
    procs.push(start('tracker', 'ip', [...c.host.exec, process.execPath, join(c.distDir, 'bench', 'tracker.js'), '127.0.0.1', '8080'], join(dir, 'tracker.log')))
    // aria2c announces once at start and retries only minutes later: the tracker must be up first
    if (!await waitUntil(() => c.host.listening(8080), 15_000)) throw new Error('tracker did not start')
    const seeder = start('aria2-seed', 'ip', [...c.host.exec, 'aria2c', ...A2, '--listen-port=51413', `--dir=${join(dir, 'seed')}`, '--bt-seed-unverified=true', '--seed-ratio=0.0', c.image.torrentPath], join(dir, 'seed.log'))
    procs.push(seeder)
    if (!await waitUntil(() => c.host.listening(51413), 15_000)) throw new Error('aria2c seeder did not start')
    await sleep(1000)
    const out = join(dir, 'get')
    return [await timedDownload(c, dir, 'aria2c → aria2c', seeder, ['aria2c', ...A2, '--listen-port=51414', `--dir=${out}`, '--seed-time=0', c.image.torrentPath], join(out, c.image.id))]
  } finally { await stopAll(procs) }
}

async function pairImgdist (c: PairCtx): Promise<PairRow[]> {
  const dir = join(c.work, 'imgdist')
  await mkdir(dir, { recursive: true })
  const procs: Proc[] = []
  try {
    const server = await startIndexOrigin({ distDir: c.distDir, exec: c.host.exec, host: '127.0.0.1', port: 8080, work: dir, image: c.image, webSeed: false, torrentPort: 6881 })
    procs.push(server)
    const rows: PairRow[] = []
    // the index's HTTP image route, as a plain-HTTP client sees it
    const got = join(dir, 'curl-got')
    rows.push(await timedDownload(c, dir, 'curl ← imgdist-index /v1/images', server, ['curl', '-sS', '--fail', '-o', got, `http://127.0.0.1:8080/v1/images/${c.image.id}`], got))
    await rm(got, { force: true })
    const a: AgentSpec = { distDir: c.distDir, exec: c.host.exec, dir: join(dir, 'agent'), site: 'pair', indexUrl: 'http://127.0.0.1:8080/v1/index.yaml', image: c.image, api: '127.0.0.1:7800', torrentPort: 6882 }
    await writeAgentConfig(a)
    const seed0 = cpuSeconds(server.pid) ?? NaN
    const t0 = performance.now()
    const agent = spawnAgent(a)
    procs.push(agent)
    const sidecar = join(agentTargetDir(a), `${c.image.id}.json`)
    let downloaded: number | undefined
    let leechAtDownload: number | undefined
    let seedAtDownload: number | undefined
    const done = await waitUntil(() => {
      if (downloaded === undefined) {
        const e = agentImage(c.host.exec, a.api, c.image.id)
        if (e !== undefined && typeof e.progress === 'number' && e.progress >= 1) {
          downloaded = (performance.now() - t0) / 1000
          leechAtDownload = cpuSeconds(agent.pid)
          seedAtDownload = cpuSeconds(server.pid)
        }
      }
      return existsSync(sidecar) || agent.exitedAt !== undefined
    }, c.timeoutMs, 250)
    const seconds = (performance.now() - t0) / 1000
    const leechCpu = cpuSeconds(agent.pid)
    const seedCpu = (cpuSeconds(server.pid) ?? NaN) - seed0
    const ok = done && existsSync(sidecar) && await sha512OfFile(join(agentTargetDir(a), `${c.image.id}.img`)).catch(() => '') === c.image.sha512
    if (downloaded !== undefined) {
      rows.push({ tool: 'imgdist index seed → agent (bytes in)', seconds: downloaded, leechCpu: leechAtDownload, seedCpu: (seedAtDownload ?? NaN) - seed0, ok, note: 'bytes in = until the agent\'s status API first showed progress 1 (polled every 250 ms)' })
    }
    rows.push({ tool: 'imgdist index seed → agent (registered)', seconds: ok ? seconds : undefined, leechCpu, seedCpu, ok })
    return rows
  } finally { await stopAll(procs) }
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  console.error(`bench:pair: ${(err as Error).message}`)
  process.exitCode = 1
}).finally(() => { killLive() })
