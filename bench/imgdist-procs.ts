import { copyFile, link, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { parseTorrent } from '../lib/torrent-meta.js'
import type { BenchImage } from './fixture.js'
import { run, sleep, start, tryRun, waitUntil, type Proc } from './proc.js'

/**
 * Starting the real imgdist processes for a benchmark: an index server that publishes the bench
 * catalogue and seeds the image as any operator would set it up, and agents with a directory
 * target. `exec` is the `ip netns exec NS` prefix of the host each runs in.
 */

export interface OriginSpec {
  distDir: string
  exec: string[]
  /** address the server listens on and agents use */
  host: string
  port: number
  work: string
  image: BenchImage
  webSeed: boolean
  seed?: boolean
  torrentPort?: number
  /** the index server's `seeding.egressBudget` (copies of the image); default its own */
  egressBudget?: number | undefined
  /**
   * Publish only the empty index (v1) and stage the image with `import --index` (as an operator
   * preparing a release would); `publishIndex` then releases it. Default: publish and seed now.
   */
  staged?: boolean
}

export async function startIndexOrigin (o: OriginSpec): Promise<Proc> {
  const bin = join(o.distDir, 'bin', 'imgdist-index.js')
  const origin = `http://${o.host}:${o.port}`
  const dataDir = join(o.work, 'index-data')
  run(process.execPath, [bin, 'init', '--data-dir', dataDir, '--root', o.image.rootPath])
  const cfgPath = join(o.work, 'index.yaml')
  await writeFile(cfgPath, stringify({
    dataDir,
    listen: `${o.host}:${o.port}`,
    publicUrl: origin,
    logLevel: 'warn',
    seeding: { enabled: o.seed ?? true, dht: false, torrentPort: o.torrentPort ?? 6881, rescanInterval: '1m', ...(o.egressBudget !== undefined ? { egressBudget: o.egressBudget } : {}) },
    torrents: { injectTracker: true, injectWebSeed: o.webSeed }
  }))
  const log = join(o.work, 'index.log')
  const server = start('index', 'ip', [...o.exec, process.execPath, bin, 'serve', '--config', cfgPath], log)
  const curl = (...args: string[]): string | undefined => tryRun('ip', [...o.exec, 'curl', '-sS', '--fail', '--max-time', '10', ...args])
  if (!await waitUntil(() => server.exitedAt !== undefined || curl(`${origin}/healthz`) !== undefined, 30_000) || server.exitedAt !== undefined) {
    throw new Error(`imgdist-index did not start (see ${log})`)
  }
  if (o.staged === true) {
    publishIndex(o, o.image.emptyIndexPath)
    run(process.execPath, [bin, 'import', '--data-dir', dataDir, '--id', o.image.id, '--torrent', o.image.torrentPath, '--index', o.image.indexPath, o.image.path])
    return server
  }
  // publish as an endorser and operator would: the signed index over HTTP, the bytes placed by hand
  publishIndex(o, o.image.indexPath)
  run(process.execPath, [bin, 'import', '--data-dir', dataDir, '--id', o.image.id, '--torrent', o.image.torrentPath, o.image.path])
  server.child.kill('SIGHUP') // rescan now rather than at the next rescanInterval
  if (o.seed ?? true) {
    const seeding = (): boolean => /^imgdist_index_torrents_seeded\s+1\b/m.test(curl(`${origin}/metrics`) ?? '')
    if (!await waitUntil(seeding, 120_000, 250)) throw new Error('imgdist-index is not seeding the image after 120 s')
    await sleep(1000) // let the seeder announce before the downloaders ask the tracker
  } else {
    await waitUntil(() => curl('-I', `${origin}/v1/images/${o.image.id}`) !== undefined, 60_000, 250)
  }
  return server
}

/** PUT of a signed index to the origin, as `imgdist-sign publish` does (curl inside the origin's namespace). */
export function publishIndex (o: Pick<OriginSpec, 'exec' | 'host' | 'port'>, indexPath: string): void {
  run('ip', [...o.exec, 'curl', '-sS', '--fail-with-body', '-X', 'PUT', '-H', 'Content-Type: application/yaml', '--data-binary', `@${indexPath}`, `http://${o.host}:${o.port}/v1/index.yaml`])
}

export interface AgentSpec {
  distDir: string
  exec: string[]
  dir: string
  site: string
  indexUrl: string
  image: BenchImage
  api: string
  torrentPort: number
}

export function agentTargetDir (a: AgentSpec): string { return join(a.dir, 'images') }

/** Writes the agent's config (before the clock starts). */
export async function writeAgentConfig (a: AgentSpec): Promise<void> {
  await mkdir(agentTargetDir(a), { recursive: true })
  await writeFile(join(a.dir, 'agent.yaml'), stringify({
    site: a.site,
    dataDir: join(a.dir, 'data'),
    api: { listen: a.api },
    swarm: { torrentPort: a.torrentPort, dht: { enabled: false }, lsd: false },
    subscriptions: [{ name: 'bench', url: a.indexUrl, root: a.image.rootPath, pollInterval: '1m' }],
    policy: { approval: 'auto' },
    targets: [{ name: 'dir', type: 'directory', path: agentTargetDir(a) }],
    // info: a few lines per image, whose timestamps bench:pair reads (IMGDIST_BENCH_LOG_LEVEL=trace for per-piece lines)
    logLevel: process.env.IMGDIST_BENCH_LOG_LEVEL ?? 'info'
  }))
}

/**
 * Places the image where the agent keeps a torrent's pieces (`<dataDir>/downloads/<infoHash>/<torrent
 * name>`, swarm/swarm.ts `downloadDir` and agent/pipeline.ts `filePathOf`) before the agent starts:
 * the agent hash-checks existing pieces when it adds the torrent, so it resumes at 100 % without a
 * byte from the network, then verifies, registers and seeds. Hard link (no copy of the bytes) when
 * the file system allows, else a copy. Returns the path.
 */
export async function preloadAgentImage (a: AgentSpec): Promise<string> {
  const t = parseTorrent(await readFile(a.image.torrentPath), { infoHash: a.image.infoHash, length: a.image.size })
  const dir = join(a.dir, 'data', 'downloads', a.image.infoHash)
  await mkdir(dir, { recursive: true })
  const dest = join(dir, t.name)
  try { await link(a.image.path, dest) } catch { await copyFile(a.image.path, dest) }
  return dest
}

export function spawnAgent (a: AgentSpec): Proc {
  const cfg = join(a.dir, 'agent.yaml')
  // IMGDIST_BENCH_CPU_PROF=DIR: each agent writes a V8 CPU profile there (summarise with dist/bench/profile-summary.js)
  const prof = process.env.IMGDIST_BENCH_CPU_PROF !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.IMGDIST_BENCH_CPU_PROF}`] : []
  // IMGDIST_BENCH_NODE_ARGS="--trace-deopt ...": V8 flags NODE_OPTIONS refuses; output lands in agent.log
  const extra = (process.env.IMGDIST_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
  return start(`agent-${a.site}`, 'ip', [...a.exec, process.execPath, ...prof, ...extra, join(a.distDir, 'bin', 'imgdist-agent.js'), 'run', '--config', cfg], join(a.dir, 'agent.log'))
}

/** GET of the agent's API path as JSON, or undefined (curl inside the agent's namespace). */
function agentJson<T> (exec: string[], api: string, path: string): T | undefined {
  const out = tryRun('ip', [...exec, 'curl', '-sS', '--max-time', '5', `http://${api}${path}`])
  if (out === undefined) return undefined
  try { return JSON.parse(out) as T } catch { return undefined }
}

/** The agent's GET /v1/status, or undefined. */
export function agentStatus (exec: string[], api: string): { catalogues?: Array<{ indexVersion: number, watching: boolean }> } | undefined {
  return agentJson(exec, api, '/v1/status')
}

/** The agent's GET /v1/images entry for the image, or undefined. */
export function agentImage (exec: string[], api: string, id: string): Record<string, unknown> | undefined {
  const images = agentJson<{ images?: unknown }>(exec, api, '/v1/images')?.images
  return Array.isArray(images) ? (images as Array<Record<string, unknown>>).find((i) => i.id === id) : undefined
}
