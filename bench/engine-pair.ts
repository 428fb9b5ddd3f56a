import { existsSync, readFileSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { parseTorrent } from '../lib/torrent-meta.js'
import { Swarm, type SwarmOptions } from '../swarm/swarm.js'
import { num, parseFlags } from './args.js'
import { makeBenchImage } from './fixture.js'
import { cpuSeconds, spawnRole } from './proc.js'
import { leechRuns, printMedians, type LeechResult, type LeechRuns } from './leech-runs.js'
import { machine } from './report.js'

/**
 * node dist/bench/engine-pair.js [--size-mib 512] [--piece-kib 1024] [--runs 3] [--cpu-prof false]
 *
 * The BitTorrent engine alone (swarm/, no agent, no HTTP, no LevelDB): one seeding process and
 * one downloading process on 127.0.0.1, each a Swarm with DHT, LSD and trackers off, the
 * downloader given the seeder with addPeer. Separate processes so that process.cpuUsage()
 * gives each side's CPU. Prints MiB/s and CPU-s per GiB for every run and the median: the
 * number to watch when changing the wire path, without the agent's start-up, sha512 pass and
 * registration that bench:pair includes. With --cpu-prof the downloader runs under
 * `node --cpu-prof`; summarise with profile-summary.js.
 */

const USAGE = 'usage: node dist/bench/engine-pair.js [--size-mib 512] [--piece-kib 1024] [--runs 3] [--cpu-prof false] [--work-dir /tmp/imgdist-engine-pair] [--timeout-s 300]'
const SELF = fileURLToPath(import.meta.url)


function swarmOpts (dataDir: string): SwarmOptions {
  return { dataDir, torrentPort: 0, dht: { enabled: false, bootstrap: [] }, lsd: false, pex: true, trackers: [], uploadLimit: 0, downloadLimit: 0, maxConns: 55 }
}

const log = pino({ level: process.env.IMGDIST_BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2))

async function seedRole (torrentPath: string, imagePath: string, dir: string): Promise<void> {
  const bytes = readFileSync(torrentPath)
  const s = new Swarm(swarmOpts(dir), log)
  const h = s.add(parseTorrent(bytes).infoHash, bytes, [], { path: imagePath, verified: true })
  await h.done
  process.stdout.write(JSON.stringify({ port: await s.listening() }) + '\n')
  // Serve until the parent closes stdin.
  process.stdin.resume()
  process.stdin.on('end', () => { void s.close().then(() => { process.exit(0) }) })
}

async function leechRole (torrentPath: string, dir: string, port: number): Promise<void> {
  const bytes = readFileSync(torrentPath)
  const s = new Swarm(swarmOpts(dir), log)
  const h = s.add(parseTorrent(bytes).infoHash, bytes, [])
  while (!h.ready) await new Promise((resolve) => setTimeout(resolve, 5))
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  s.addPeer(h.infoHash, `127.0.0.1:${port}`)
  await h.done
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const r: LeechResult = { seconds, cpuS: (cpu.user + cpu.system) / 1e6, userS: cpu.user / 1e6, sysS: cpu.system / 1e6, bytes: h.torrent.length, maxRssMiB: process.resourceUsage().maxRSS / 1024 }
  process.stdout.write(JSON.stringify(r) + '\n')
  await s.close()
  process.exit(0)
}

/** This file in a role, as a child process. */
function child (args: string[], nodeArgs: string[], timeoutMs: number): ReturnType<typeof spawnRole> {
  return spawnRole(SELF, args, nodeArgs, timeoutMs)
}

async function main (): Promise<number> {
  const f = parseFlags(process.argv.slice(2), { 'size-mib': '512', 'piece-kib': '1024', runs: '3', 'cpu-prof': 'false', 'work-dir': '/tmp/imgdist-engine-pair', 'timeout-s': '300', role: '', torrent: '', image: '', dir: '', port: '' }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  if (f.role === 'seed') { await seedRole(f.torrent, f.image, f.dir); return -1 }
  if (f.role === 'leech') { await leechRole(f.torrent, f.dir, Number(f.port)); return -1 }

  const sizeMiB = num(f, 'size-mib', 1, 64 * 1024)
  const pieceKiB = num(f, 'piece-kib', 16, 16 * 1024)
  const runs = num(f, 'runs', 1, 50)
  const timeoutMs = num(f, 'timeout-s', 1) * 1000
  const work = f['work-dir']
  const imgDir = join(work, `image-${sizeMiB}m-${pieceKiB}k`)
  const m = machine()
  const image = { path: join(imgDir, 'engine.img'), torrentPath: '' }
  if (!existsSync(join(imgDir, 'done'))) {
    await rm(imgDir, { recursive: true, force: true })
    const b = await makeBenchImage({ dir: imgDir, id: 'engine', size: sizeMiB * 2 ** 20, pieceLength: pieceKiB * 1024, announce: [] })
    image.torrentPath = b.torrentPath
    await writeFile(join(imgDir, 'done'), b.torrentPath)
  } else {
    image.torrentPath = readFileSync(join(imgDir, 'done'), 'utf8')
  }
  console.log(`engine-pair: ${sizeMiB} MiB, ${pieceKiB} KiB pieces, ${runs} run(s); ${m.cpuModel} ×${m.nproc}, load ${m.load}`)

  const seeder = child(['--role', 'seed', '--torrent', image.torrentPath, '--image', image.path, '--dir', join(work, 'seed')], [], timeoutMs)
  const port = Number((await seeder.line).port)
  const o: LeechRuns = {
    runs, work, cpuProf: f['cpu-prof'] === 'true', who: 'downloader',
    leech: (dir, nodeArgs) => child(['--role', 'leech', '--torrent', image.torrentPath, '--dir', dir, '--port', String(port)], nodeArgs, timeoutMs),
    seedCpu: () => cpuSeconds(seeder.pid)
  }
  try {
    printMedians(o, await leechRuns(o), sizeMiB)
  } finally {
    seeder.end()
    await seeder.exited
  }
  return 0
}

main().then((code) => { if (code >= 0) process.exit(code) }, (err: Error) => { console.error(err.message); process.exit(1) })
