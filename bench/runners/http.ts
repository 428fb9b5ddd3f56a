import { existsSync } from 'node:fs'
import { link, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { start, stopAll, timeFileCpu, waitUntil, type Proc } from '../proc.js'
import { measure, skipped, verifyFiles, type SwarmContext, type SwarmRun } from './swarm-run.js'

/** Plain HTTP from the origin: python3's threading http.server, N−1 curl downloads at once. */

export async function runHttp (ctx: SwarmContext): Promise<SwarmRun> {
  for (const tool of ['/usr/bin/curl', '/usr/bin/python3', '/usr/bin/time']) {
    if (!existsSync(tool)) return skipped('http', ctx, `${tool}: not installed`)
  }
  const { bed, image, work } = ctx
  const root = join(work, 'www')
  await mkdir(root, { recursive: true })
  await link(image.path, join(root, image.id))
  const fileOf = (h: number): string => join(work, `h${h}`, image.id)
  const timeOf = (h: number): string => join(work, `h${h}.time`)
  const all: Proc[] = []
  try {
    const server = start('http', 'ip', [...bed.exec(0), '/usr/bin/python3', '-m', 'http.server', String(ctx.originPort), '--bind', bed.ip(0), '--directory', root], join(work, 'h0.log'))
    all.push(server)
    if (!await waitUntil(() => server.exitedAt !== undefined || bed.listening(0, ctx.originPort), 15_000) || server.exitedAt !== undefined) throw new Error('http.server did not start')
    const url = `http://${bed.ip(0)}:${ctx.originPort}/${image.id}`
    const { run } = await measure({
      tool: 'http (curl)',
      ctx,
      origin: [server],
      startDownloaders: () => {
        const m = new Map<number, Proc>()
        for (const h of ctx.downloaders) {
          // /usr/bin/time gives curl's exact CPU: it exits by itself, so /proc is gone when we look
          const p = start(`curl-h${h}`, 'ip', [...bed.exec(h), '/usr/bin/time', '-f', '%U %S', '-o', timeOf(h), 'curl', '-sS', '--fail', '--create-dirs', '-o', fileOf(h), url], join(work, `h${h}.log`))
          m.set(h, p)
          all.push(p)
        }
        return m
      },
      isDone: (_h, p) => p?.exitedAt !== undefined && p.child.exitCode === 0,
      fileOf,
      exitedCpu: (h) => timeFileCpu(timeOf(h))
    })
    await stopAll(all)
    await verifyFiles(run, image, fileOf)
    return run
  } finally {
    await stopAll(all)
  }
}
