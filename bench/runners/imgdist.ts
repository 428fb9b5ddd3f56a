import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { agentImage, agentStatus, agentTargetDir, publishIndex, spawnAgent, startIndexOrigin, writeAgentConfig, type AgentSpec } from '../imgdist-procs.js'
import { sleep, stopAll, waitUntil, type Proc } from '../proc.js'
import { measure, skipped, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'

/**
 * imgdist as deployed: origin = `imgdist-index serve` on host 0 (origin seed, tracker at
 * /announce, DHT off), one `imgdist-agent run` per downloader host with a directory target.
 * A downloader is complete when its target holds `<id>.json`, which the directory target writes
 * only after the image verified against the signed sha512 and was registered.
 *
 * Two ways to start the clock:
 * - cold (`imgdist`): agents are started at T0, the image already published and seeded, so
 *   their start-up (Node, modules, LevelDB, first poll) counts, as aria2c's does;
 * - warm (`imgdist-warm`): agents have been running (as under systemd) and watching the
 *   index (held GETs), the image staged at the origin; T0 is the PUT of the index that
 *   releases it. This is the time from publication to every site, the one operators see.
 */

const AGENT_API = '127.0.0.1:7800'

export function imgdistMissing (distDir: string): string | undefined {
  const missing = ['bin/imgdist-agent.js', 'bin/imgdist-index.js'].filter((f) => !existsSync(join(distDir, f)))
  return missing.length > 0 ? `imgdist: not built yet (missing dist/${missing.join(', dist/')})` : undefined
}

/** `egressBudget`: the index server's `seeding.egressBudget` (copies of the image; 0: no limit) */
export async function runImgdist (ctx: SwarmContext, o: { webSeed: boolean, warm?: boolean, egressBudget?: number }): Promise<SwarmRun> {
  const tool = o.warm === true ? 'imgdist-warm' : 'imgdist'
  const why = imgdistMissing(ctx.distDir)
  if (why !== undefined) return skipped(tool, ctx, why)
  const { bed, image, work } = ctx
  const all: Proc[] = []
  try {
    const originSpec = { distDir: ctx.distDir, exec: bed.exec(0), host: bed.ip(0), port: ctx.originPort, work, image, webSeed: o.webSeed, staged: o.warm === true, egressBudget: o.egressBudget }
    const server = await startIndexOrigin(originSpec)
    all.push(server)
    const spec = (h: number): AgentSpec => ({
      distDir: ctx.distDir, exec: bed.exec(h), dir: join(work, `h${h}`), site: `site-${h}`,
      indexUrl: `http://${bed.ip(0)}:${ctx.originPort}/v1/index.yaml`, image, api: AGENT_API, torrentPort: 6881
    })
    for (const h of ctx.downloaders) await writeAgentConfig(spec(h))
    const fileOf = (h: number): string => join(agentTargetDir(spec(h)), `${image.id}.img`)
    const agents = new Map<number, Proc>()
    const spawnAll = (): Map<number, Proc> => {
      for (const h of ctx.downloaders) { const p = spawnAgent(spec(h)); agents.set(h, p); all.push(p) }
      return agents
    }
    if (o.warm === true) {
      spawnAll()
      // every agent has the empty catalogue and holds a GET at the origin
      const ready = (h: number): boolean => agentStatus(bed.exec(h), AGENT_API)?.catalogues?.[0]?.watching === true
      if (!await waitUntil(() => ctx.downloaders.every(ready), 60_000, 250)) throw new Error(`agents not watching the index after 60 s: ${ctx.downloaders.filter((h) => !ready(h)).map((h) => `h${h}`).join(' ')}`)
      await sleep(2000) // let start-up work (JIT, GC) finish so the clock sees only the release
    }
    const { run } = await measure({
      tool,
      ctx,
      origin: [server],
      cpuSinceStart: o.warm === true,
      startDownloaders: o.warm === true ? () => { publishIndex(originSpec, image.indexPath); return agents } : spawnAll,
      isDone: (h) => existsSync(join(agentTargetDir(spec(h)), `${image.id}.json`)),
      fileOf
    })
    if (o.webSeed) run.notes.push('web seed on: agents may also fetch from the origin over HTTP')
    if (o.warm === true) run.notes.push('warm: agents running and watching before T0; T0 = PUT of the index releasing the staged image; CPU counted from T0')
    // the agents' own account of where their bytes came from
    const src = ctx.downloaders.map((h) => {
      const e = agentImage(bed.exec(h), AGENT_API, image.id)
      const mib = (k: string): string => typeof e?.[k] === 'number' ? ((e[k] as number) / 2 ** 20).toFixed(1) : '?'
      return `h${h} ${mib('bytesFromPeers')}/${mib('bytesFromWebSeeds')}/${mib('bytesUploaded')}`
    })
    run.notes.push(`agent-reported MiB from peers/from web seeds/uploaded: ${src.join('; ')}`)
    await stopAll(all)
    await verifyFiles(run, image, fileOf)
    return run
  } finally {
    await stopAll(all)
  }
}
