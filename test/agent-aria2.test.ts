import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'
import { agentAsOnlySeed, agentUploaded, foreignProcs, seedDirWith, torrentFile, type Foreign } from './helpers/foreign-client.js'
import { freePort } from './helpers/free-port.js'

const ARIA2C = '/usr/bin/aria2c'
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex')

const A2 = ['--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
  '--file-allocation=none', '--console-log-level=warn', '--summary-interval=0', '--check-certificate=false']

t.test('interop with aria2c', { skip: existsSync(ARIA2C) ? false : `aria2c is not installed at ${ARIA2C} (apt-get install aria2): interop not tested` }, async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-aria2-')
  const { agents, startAgent } = agentFleet(t)
  const foreign = foreignProcs(t)
  const aria2 = (args: string[]): Foreign => foreign.spawn(ARIA2C, [...A2, ...args])

  await t.test('an agent downloads an image only an aria2c seeder has', async (t) => {
    const e = await fx.addImage('from-aria2', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const seedDir = await seedDirWith(fx, e, join(dir, 'aria2-seed'))
    const seed = aria2(['--seed-ratio=0', '-V', `--dir=${seedDir}`, `--listen-port=${await freePort()}`, '--bt-tracker-interval=2', await torrentFile(fx, e, dir)])
    await waitFor('aria2c announced', async () => (origin.tracker.torrents[e.infoHash]?.complete ?? 0) >= 1, 30_000)
    const a = await startAgent(join(dir, 'site-1'), 'site-1', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
    const img = await waitFor('registered from aria2c', async () => (await imagesOf(a)).find((i) => i.id === e.id && i.state === 'registered'), 60_000)
      .catch((err) => { t.comment(seed.tail()); throw err })
    t.equal(img.bytesFromPeers, e.size, 'every byte came from the aria2c peer')
    t.equal(sha512(await readFile(join(a.dir, 'images', `${e.id}.img`))), e.sha512)
  })

  await t.test('an aria2c leecher downloads an image only an agent seeds', async (t) => {
    const e = await fx.addImage('to-aria2', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    await agentAsOnlySeed(fx, origin, e, startAgent, dir, 'site-2')
    const outDir = join(dir, 'aria2-out')
    const leech = aria2(['--seed-time=0', `--dir=${outDir}`, `--listen-port=${await freePort()}`, '--bt-tracker-interval=2', '--bt-stop-timeout=60', await torrentFile(fx, e, dir)])
    const code = await leech.exited
    t.equal(code, 0, `aria2c finished (${leech.tail(500)})`)
    t.equal(sha512(await readFile(join(outDir, e.id))), e.sha512, 'aria2c got the endorsed bytes')
    t.ok(await agentUploaded(agents, e.id), 'an agent uploaded')
  })
})
