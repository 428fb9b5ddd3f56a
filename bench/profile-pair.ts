import { existsSync, readFileSync } from 'node:fs'
import { link, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebTorrent from 'webtorrent'
import { num, parseFlags } from './args.js'
import { makeBenchImage } from './fixture.js'
import { cpuSeconds, spawnRole } from './proc.js'
import { leechRuns, printMedians, type LeechResult, type LeechRuns } from './leech-runs.js'
import { machine } from './report.js'

/**
 * node dist/bench/profile-pair.js [--size-mib 512] [--piece-kib 1024] [--runs 3] [--cpu-prof true]
 *
 * A focused CPU benchmark of webtorrent itself (no agent, no index server): one webtorrent
 * seeder process and one webtorrent leecher process on 127.0.0.1, DHT/LSD/uTP/trackers off, the
 * leecher connected with addPeer and using the client and add() options (rarest-first) of the
 * agent's webtorrent downloader before session 2 (agent/downloader.ts, since replaced by swarm/).
 * Separate processes so that process.cpuUsage() attributes CPU to one side.
 * Prints MiB/s and the leecher's CPU-s per GiB received for each run and the median.
 * With --cpu-prof the leecher runs under `node --cpu-prof`; summarise with profile-summary.js.
 */

const USAGE = 'usage: node dist/bench/profile-pair.js [--size-mib 512] [--piece-kib 1024] [--runs 3] [--seeders 1] [--strategy rarest] [--cpu-prof false] [--work-dir /tmp/imgdist-profile] [--timeout-s 300]'
const SELF = fileURLToPath(import.meta.url)


// The client options the agent's webtorrent downloader used (agent/downloader.ts before session 2), for a loopback pair.
function client (): WebTorrent {
  return new WebTorrent({ torrentPort: 0, dht: false, lsd: false, utp: false, natUpnp: false, natPmp: false, maxConns: 55, tracker: false } as ConstructorParameters<typeof WebTorrent>[0])
}

function addOpts (path: string, strategy = 'rarest'): Record<string, unknown> {
  return { path, strategy, skipVerify: false, announce: [], urlList: [], destroyStoreOnDestroy: false }
}

async function seedRole (torrentPath: string, dir: string): Promise<void> {
  const c = client()
  const t = c.add(readFileSync(torrentPath), addOpts(dir))
  await new Promise<void>((resolve, reject) => { t.once('done', () => { resolve() }); t.once('error', reject) })
  const addr = c.address()
  process.stdout.write(JSON.stringify({ port: addr?.port }) + '\n')
  // Serve until the parent closes stdin.
  process.stdin.resume()
  process.stdin.on('end', () => { c.destroy(() => { process.exit(0) }) })
}

async function leechRole (torrentPath: string, dir: string, ports: number[], strategy: string): Promise<void> {
  const c = client()
  const t = c.add(readFileSync(torrentPath), addOpts(dir, strategy))
  await new Promise<void>((resolve) => { if ((t as unknown as { ready: boolean }).ready) resolve(); else t.once('ready', () => { resolve() }) })
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  for (const port of ports) t.addPeer(`127.0.0.1:${port}`)
  await new Promise<void>((resolve, reject) => { t.once('done', () => { resolve() }); t.once('error', reject) })
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const r: LeechResult = { seconds, cpuS: (cpu.user + cpu.system) / 1e6, userS: cpu.user / 1e6, sysS: cpu.system / 1e6, bytes: t.length }
  process.stdout.write(JSON.stringify(r) + '\n')
  c.destroy(() => { process.exit(0) })
}

/** This file in a role, as a child process. */
function child (args: string[], nodeArgs: string[], timeoutMs: number): ReturnType<typeof spawnRole> {
  return spawnRole(SELF, args, nodeArgs, timeoutMs)
}

async function main (): Promise<number> {
  const f = parseFlags(process.argv.slice(2), { 'size-mib': '512', 'piece-kib': '1024', runs: '3', 'cpu-prof': 'false', 'work-dir': '/tmp/imgdist-profile', 'timeout-s': '300', seeders: '1', strategy: 'rarest', role: '', torrent: '', dir: '', ports: '' }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  if (f.role === 'seed') { await seedRole(f.torrent, f.dir); return -1 }
  if (f.role === 'leech') { await leechRole(f.torrent, f.dir, f.ports.split(',').map(Number), f.strategy); return -1 }

  const sizeMiB = num(f, 'size-mib', 1, 64 * 1024)
  const pieceKiB = num(f, 'piece-kib', 16, 16 * 1024)
  const runs = num(f, 'runs', 1, 50)
  const nSeeders = num(f, 'seeders', 1, 16)
  const timeoutMs = num(f, 'timeout-s', 1) * 1000
  const work = f['work-dir']
  const imgDir = join(work, `image-${sizeMiB}m-${pieceKiB}k`)
  const m = machine()
  let image = { path: join(imgDir, 'profile.img'), torrentPath: join(imgDir, 'profile.torrent') }
  if (!existsSync(join(imgDir, 'done'))) {
    await rm(imgDir, { recursive: true, force: true })
    const b = await makeBenchImage({ dir: imgDir, id: 'profile', size: sizeMiB * 2 ** 20, pieceLength: pieceKiB * 1024, announce: [] })
    image = { path: b.path, torrentPath: b.torrentPath }
    await writeFile(join(imgDir, 'done'), image.torrentPath)
  } else {
    image.torrentPath = readFileSync(join(imgDir, 'done'), 'utf8')
  }
  console.log(`profile-pair: ${sizeMiB} MiB, ${pieceKiB} KiB pieces, ${nSeeders} seeder(s), strategy ${f.strategy}, ${runs} run(s); ${m.cpuModel} ×${m.nproc}, load ${m.load}`)

  // The torrent's name is the image id without the .img suffix: give the seeder a folder where it is.
  const seedDir = join(imgDir, 'seed')
  if (!existsSync(join(seedDir, 'profile'))) { await mkdir(seedDir, { recursive: true }); await link(image.path, join(seedDir, 'profile')) }
  // With --seeders K the leecher has K wires, as a downloader in a swarm has several peers.
  const seeders = Array.from({ length: nSeeders }, () => child(['--role', 'seed', '--torrent', image.torrentPath, '--dir', seedDir], [], timeoutMs))
  const ports = (await Promise.all(seeders.map(async (s) => await s.line))).map((l) => Number(l.port))
  const seedCpu = (): number | undefined => seeders.reduce<number | undefined>((a, s) => { const c = cpuSeconds(s.pid); return a === undefined || c === undefined ? undefined : a + c }, 0)
  const o: LeechRuns = {
    runs, work, cpuProf: f['cpu-prof'] === 'true', who: 'leecher',
    leech: (dir, nodeArgs) => child(['--role', 'leech', '--torrent', image.torrentPath, '--dir', dir, '--ports', ports.join(','), '--strategy', f.strategy], nodeArgs, timeoutMs),
    seedCpu
  }
  try {
    printMedians(o, await leechRuns(o), sizeMiB)
  } finally {
    for (const s of seeders) s.end()
    await Promise.all(seeders.map(async (s) => { await s.exited }))
  }
  return 0
}

main().then((code) => { if (code >= 0) process.exit(code) }, (err: Error) => { console.error(err.message); process.exit(1) })
