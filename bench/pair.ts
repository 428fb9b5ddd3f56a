import { existsSync, readFileSync } from 'node:fs'
import { link, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { num, parseFlags } from './args.js'
import { makeBenchImage, sha512OfFile, type BenchImage } from './fixture.js'
import { agentImage, agentTargetDir, preloadAgentImage, spawnAgent, startIndexOrigin, writeAgentConfig, type AgentSpec } from './imgdist-procs.js'
import { loopbackBenchHost, type LoopbackHost } from './netns.js'
import { cpuSeconds, killLive, removeBigFiles, sleep, start, stopAll, timeFileCpu, tryRun, waitUntil, type Proc } from './proc.js'
import { appendResults, fmt, machine, machineLines, markdownTable, textTable } from './report.js'

/**
 * npm run bench:pair -- [--size-mib 512]: one seeder, one downloader, on the loopback of a
 * namespace of its own (no port clashes with anything else on the machine): imgdist (index
 * server's origin seed → agent, and agent → agent with the index as tracker only), aria2c →
 * aria2c, and curl from python3's http.server and from the index server's /v1/images.
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
  const host = loopbackBenchHost('imgb-pair')
  const m = machine()
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
  if (!only.includes('imgdist')) { /* not asked for */ } else if (existsSync(join(distDir, 'bin', 'imgdist-agent.js')) && existsSync(join(distDir, 'bin', 'imgdist-index.js'))) {
    await step('imgdist', async () => await pairImgdist(c))
    await step('imgdist-agents', async () => await pairImgdistAgents(c))
  } else rows.push({ tool: 'imgdist', ok: false, note: 'imgdist: not built yet' })

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
      'wall s = from starting the downloader process until it had the whole file (curl, aria2c: the process exits; imgdist (registered): until the downloading agent registered the verified image, so it includes start-up, catalogue fetch, sha512 check and the copy into the directory target; (bytes in): until it had verified and written every piece; both from the agent\'s log timestamps). imgdist agent → agent: the seeder is an agent that had the image placed in its data dir (no network transfer) and the index seeds nothing. CPU = user+system; seeder CPU is counted over the downloader run.',
      '', ...notes], f.results !== '' ? f.results : undefined)
  }
  return rows.every((r) => r.ok) ? 0 : 1
}

const INDEX_URL = 'http://127.0.0.1:8080/v1/index.yaml'

interface PairCtx { host: LoopbackHost, image: BenchImage, work: string, distDir: string, timeoutMs: number }

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
  return { tool: label, seconds: code === 0 ? seconds : undefined, leechCpu: timeFileCpu(tf), seedCpu, ok, note: code === 0 ? undefined : `exit code ${String(code)}` }
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
    const a: AgentSpec = { distDir: c.distDir, exec: c.host.exec, dir: join(dir, 'agent'), site: 'pair', indexUrl: INDEX_URL, image: c.image, api: '127.0.0.1:7800', torrentPort: 6882 }
    rows.push(...await timedAgent(c, a, server, 'imgdist index seed → agent', procs))
    return rows
  } finally { await stopAll(procs) }
}

/**
 * Agent ↔ agent: agent A holds the image from the start (placed in its data dir, never fetched),
 * verifies, registers and seeds it; the index serves catalogue, torrent and tracker only (no origin
 * seed, no web seed in the torrent), so agent B's only source of bytes is A.
 */
async function pairImgdistAgents (c: PairCtx): Promise<PairRow[]> {
  const dir = join(c.work, 'imgdist-agents')
  await mkdir(dir, { recursive: true })
  const procs: Proc[] = []
  const origin = 'http://127.0.0.1:8080'
  const metric = (name: string): number | undefined => {
    const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(tryRun('ip', [...c.host.exec, 'curl', '-sS', '--fail', '--max-time', '5', `${origin}/metrics`]) ?? '')
    return m?.[1] !== undefined ? Number(m[1]) : undefined
  }
  try {
    const server = await startIndexOrigin({ distDir: c.distDir, exec: c.host.exec, host: '127.0.0.1', port: 8080, work: dir, image: c.image, webSeed: false, seed: false, torrentPort: 6881 })
    procs.push(server)
    const seedSpec: AgentSpec = { distDir: c.distDir, exec: c.host.exec, dir: join(dir, 'agent-a'), site: 'pair-a', indexUrl: INDEX_URL, image: c.image, api: '127.0.0.1:7801', torrentPort: 6883 }
    await writeAgentConfig(seedSpec)
    await preloadAgentImage(seedSpec)
    const a0 = performance.now()
    const seeder = spawnAgent(seedSpec)
    procs.push(seeder)
    const seedSidecar = join(agentTargetDir(seedSpec), `${c.image.id}.json`)
    if (!await waitUntil(() => existsSync(seedSidecar) || seeder.exitedAt !== undefined, c.timeoutMs, 250) || seeder.exitedAt !== undefined) {
      throw new Error(`agent A did not register the preloaded image (see ${join(seedSpec.dir, 'agent.log')})`)
    }
    const aReady = (performance.now() - a0) / 1000
    const fromNet = agentImage(c.host.exec, seedSpec.api, c.image.id)
    const aIn = Number(fromNet?.bytesFromPeers ?? NaN) + Number(fromNet?.bytesFromWebSeeds ?? NaN)
    if (aIn !== 0) throw new Error(`agent A's status API shows ${aIn} bytes from the network (expected 0: it should resume from its data dir)`)
    // B asks the tracker once at start: A must be in the swarm by then (the only peer, no origin seed)
    if (!await waitUntil(() => (metric('imgdist_index_tracker_peers') ?? 0) >= 1, 60_000, 250)) throw new Error('agent A did not announce to the tracker within 60 s')
    const http0 = metric('imgdist_index_webseed_bytes_total') ?? 0
    const b: AgentSpec = { distDir: c.distDir, exec: c.host.exec, dir: join(dir, 'agent-b'), site: 'pair-b', indexUrl: INDEX_URL, image: c.image, api: '127.0.0.1:7802', torrentPort: 6884 }
    const rows = await timedAgent(c, b, seeder, 'imgdist agent → agent', procs)
    const httpBytes = (metric('imgdist_index_webseed_bytes_total') ?? 0) - http0
    const e = agentImage(c.host.exec, b.api, c.image.id)
    const fromPeers = Number(e?.bytesFromPeers ?? NaN)
    const fromWeb = Number(e?.bytesFromWebSeeds ?? 0)
    const last = rows[rows.length - 1] as PairRow
    last.note = `A (seeder) registered the preloaded image ${aReady.toFixed(1)} s after its start with 0 B from the network; B received ${fromPeers} B from peers, ${fromWeb} B from web seeds; the index served ${httpBytes} image bytes over HTTP during B's run`
    if (httpBytes > 0 || fromWeb > 0) for (const r of rows) r.ok = false // B must have had A as its only source
    return rows
  } finally { await stopAll(procs) }
}

/**
 * Starts agent `a` and times it to (bytes in) every piece verified and written and (registered)
 * its directory target holding `<id>.json` with the verified image. Both times are the agent's
 * own log timestamps (ms) against the wall clock at its spawn; the bench polls only to notice the
 * end (every 25 ms) and to sample CPU, which is taken when the status API first shows progress 1
 * (polled every 250 ms) and when the sidecar appears. The seeder's CPU is counted over the same spans.
 */
async function timedAgent (c: PairCtx, a: AgentSpec, seederProc: Proc, label: string, procs: Proc[]): Promise<PairRow[]> {
  await writeAgentConfig(a)
  const seed0 = cpuSeconds(seederProc.pid) ?? NaN
  const wall0 = Date.now()
  const agent = spawnAgent(a)
  procs.push(agent)
  const sidecar = join(agentTargetDir(a), `${c.image.id}.json`)
  let downloaded = false
  let probedAt = 0
  let leechAtDownload: number | undefined
  let seedAtDownload: number | undefined
  const done = await waitUntil(() => {
    if (!downloaded && performance.now() - probedAt >= 250) {
      probedAt = performance.now()
      const e = agentImage(c.host.exec, a.api, c.image.id)
      if (e !== undefined && typeof e.progress === 'number' && e.progress >= 1) {
        downloaded = true
        leechAtDownload = cpuSeconds(agent.pid)
        seedAtDownload = cpuSeconds(seederProc.pid)
      }
    }
    return existsSync(sidecar) || agent.exitedAt !== undefined
  }, c.timeoutMs, 25)
  const leechCpu = cpuSeconds(agent.pid)
  const seedCpu = (cpuSeconds(seederProc.pid) ?? NaN) - seed0
  const ok = done && existsSync(sidecar) && await sha512OfFile(join(agentTargetDir(a), `${c.image.id}.img`)).catch(() => '') === c.image.sha512
  const logged = (msg: string): number | undefined => {
    const t = logTimes(join(a.dir, 'agent.log')).get(msg)
    return t !== undefined ? (t - wall0) / 1000 : undefined
  }
  const bytesIn = logged('all pieces verified and written')
  const registered = logged('registered')
  const rows: PairRow[] = []
  if (bytesIn !== undefined) {
    rows.push({ tool: `${label} (bytes in)`, seconds: bytesIn, leechCpu: leechAtDownload, seedCpu: (seedAtDownload ?? NaN) - seed0, ok, note: 'bytes in = the agent\'s log line "all pieces verified and written"; CPU sampled when its status API first showed progress 1 (polled every 250 ms)' })
  }
  rows.push({ tool: `${label} (registered)`, seconds: ok ? registered : undefined, leechCpu, seedCpu, ok })
  return rows
}

/** The first time (epoch ms) each message appears in a pino JSON log. */
function logTimes (file: string): Map<string, number> {
  const times = new Map<string, number>()
  let text = ''
  try { text = readFileSync(file, 'utf8') } catch { return times }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const j = JSON.parse(line) as { msg?: unknown, time?: unknown }
      if (typeof j.msg === 'string' && typeof j.time === 'number' && !times.has(j.msg)) times.set(j.msg, j.time)
    } catch { /* not a log line */ }
  }
  return times
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  console.error(`bench:pair: ${(err as Error).message}`)
  process.exitCode = 1
}).finally(() => { killLive() })
