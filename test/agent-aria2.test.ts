import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { link, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'
import { freePort } from './helpers/foreign-client.js'

const ARIA2C = '/usr/bin/aria2c'
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex')

function aria2 (args: string[], logs: string[]): ChildProcess {
  const p = spawn(ARIA2C, ['--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    '--file-allocation=none', '--console-log-level=warn', '--summary-interval=0', '--check-certificate=false', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  p.stdout?.on('data', (d: Buffer) => logs.push(d.toString()))
  p.stderr?.on('data', (d: Buffer) => logs.push(d.toString()))
  return p
}

t.test('interop with aria2c', { skip: existsSync(ARIA2C) ? false : `aria2c is not installed at ${ARIA2C} (apt-get install aria2): interop not tested` }, async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-aria2-')
  const procs: ChildProcess[] = []
  const { startAgent } = agentFleet(t)
  t.teardown(() => { for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL') })

  await t.test('an agent downloads an image only an aria2c seeder has', async (t) => {
    const e = await fx.addImage('from-aria2', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const seedDir = join(dir, 'aria2-seed')
    await mkdir(seedDir, { recursive: true })
    await link(fx.images.get(e.id) as string, join(seedDir, e.id))
    const torrentPath = join(dir, `${e.id}.torrent`)
    await writeFile(torrentPath, fx.torrents.get(e.id) as Uint8Array)
    const logs: string[] = []
    const port = await freePort()
    procs.push(aria2(['--seed-ratio=0', '-V', `--dir=${seedDir}`, `--listen-port=${port}`, '--bt-tracker-interval=2', torrentPath], logs))
    await waitFor('aria2c announced', async () => (origin.tracker.torrents[e.infoHash]?.complete ?? 0) >= 1, 30_000)
    const a = await startAgent(join(dir, 'site-1'), 'site-1', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
    const img = await waitFor('registered from aria2c', async () => (await imagesOf(a)).find((i) => i.id === e.id && i.state === 'registered'), 60_000)
      .catch((err) => { t.comment(logs.join('')); throw err })
    t.equal(img.bytesFromPeers, e.size, 'every byte came from the aria2c peer')
    t.equal(sha512(await readFile(join(a.dir, 'images', `${e.id}.img`))), e.sha512)
  })

  await t.test('an aria2c leecher downloads an image only an agent seeds', async (t) => {
    const e = await fx.addImage('to-aria2', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const seeder = await startSeeder(fx, [e.id])
    const a = await startAgent(join(dir, 'site-2'), 'site-2', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
    await waitFor('agent has the image', async () => (await imagesOf(a)).find((i) => i.id === e.id && i.state === 'registered' && i.seeding), 60_000)
    await seeder.close() // from now on the agent is the only seed
    const outDir = join(dir, 'aria2-out')
    const torrentPath = join(dir, `${e.id}.torrent`)
    await writeFile(torrentPath, fx.torrents.get(e.id) as Uint8Array)
    const logs: string[] = []
    const leech = aria2(['--seed-time=0', `--dir=${outDir}`, `--listen-port=${await freePort()}`, '--bt-tracker-interval=2', '--bt-stop-timeout=60', torrentPath], logs)
    procs.push(leech)
    const code = await new Promise<number | null>((resolve) => leech.once('exit', resolve))
    t.equal(code, 0, `aria2c finished (${logs.join('').slice(-500)})`)
    t.equal(sha512(await readFile(join(outDir, e.id))), e.sha512, 'aria2c got the endorsed bytes')
    const up = await waitFor('agent counted its upload', async () => (await imagesOf(a)).find((i) => i.id === e.id && (i as { bytesUploaded?: number }).bytesUploaded !== undefined && ((i as { bytesUploaded?: number }).bytesUploaded ?? 0) > 0), 10_000)
    t.ok(up, 'the agent uploaded')
  })
})
