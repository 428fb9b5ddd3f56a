import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { agentImage, agentTargetDir, spawnAgent, startIndexOrigin, writeAgentConfig, type AgentSpec } from '../imgdist-procs.js'
import { stopAll, type Proc } from '../proc.js'
import { measure, skipped, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'

/**
 * imgdist as deployed: origin = `imgdist-index serve` on host 0 (origin seed, tracker at
 * /announce, DHT off), one `imgdist-agent run` per downloader host with a directory target.
 * A downloader is complete when its target holds `<id>.json`, which the directory target writes
 * only after the image verified against the signed sha512 and was registered.
 */

const AGENT_API = '127.0.0.1:7800'

export function imgdistMissing (distDir: string): string | undefined {
  const missing = ['bin/imgdist-agent.js', 'bin/imgdist-index.js'].filter((f) => !existsSync(join(distDir, f)))
  return missing.length > 0 ? `imgdist: not built yet (missing dist/${missing.join(', dist/')})` : undefined
}

export async function runImgdist (ctx: SwarmContext, o: { webSeed: boolean }): Promise<SwarmRun> {
  const why = imgdistMissing(ctx.distDir)
  if (why !== undefined) return skipped('imgdist', ctx, why)
  const { bed, image, work } = ctx
  const all: Proc[] = []
  try {
    const server = await startIndexOrigin({ distDir: ctx.distDir, exec: bed.exec(0), host: bed.ip(0), port: ctx.originPort, work, image, webSeed: o.webSeed })
    all.push(server)
    const spec = (h: number): AgentSpec => ({
      distDir: ctx.distDir, exec: bed.exec(h), dir: join(work, `h${h}`), site: `site-${h}`,
      indexUrl: `http://${bed.ip(0)}:${ctx.originPort}/v1/index.yaml`, image, api: AGENT_API, torrentPort: 6881
    })
    for (const h of ctx.downloaders) await writeAgentConfig(spec(h))
    const fileOf = (h: number): string => join(agentTargetDir(spec(h)), `${image.id}.img`)
    const { run } = await measure({
      tool: 'imgdist',
      ctx,
      origin: [server],
      startDownloaders: () => {
        const m = new Map<number, Proc>()
        for (const h of ctx.downloaders) { const p = spawnAgent(spec(h)); m.set(h, p); all.push(p) }
        return m
      },
      isDone: (h) => existsSync(join(agentTargetDir(spec(h)), `${image.id}.json`)),
      fileOf
    })
    if (o.webSeed) run.notes.push('web seed on: agents may also fetch from the origin over HTTP')
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
