import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor } from './helpers/agent-proc.js'

t.test('kill -9 mid-download: the restarted agent resumes and fetches less than the image', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-resume-')
  const size = 8 * 1024 * 1024
  const entry = await fx.addImage('resume-me', size, { pieceLength: 64 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, [entry.id], { uploadLimit: 1024 * 1024 })
  t.teardown(seeder.close)
  const { startAgent } = agentFleet(t)
  const cfg = { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] }
  const first = await startAgent(join(dir, 'site'), 'site-r', cfg)
  const partial = await waitFor('a third downloaded', async () => (await imagesOf(first)).find((i) => i.state === 'downloading' && i.progress >= 0.3 && i.progress < 0.9), 60_000)
  t.ok(partial.progress < 1, `killed at ${(partial.progress * 100).toFixed(0)}%`)
  await first.stop('SIGKILL')

  const second = await startAgent(join(dir, 'site'), 'site-r', cfg, first.configPath)
  const img = await waitFor('registered after restart', async () => (await imagesOf(second)).find((i) => i.state === 'registered'), 30_000).catch(async (err) => { t.comment(JSON.stringify(await imagesOf(second))); t.comment(second.logs.slice(-30).join('\n')); throw err })
  t.ok(img.resumedBytes > 0, `pieces on disk were kept (${img.resumedBytes} bytes)`)
  t.ok(img.bytesThisRun < size, `the second run fetched ${img.bytesThisRun} bytes, less than the image (${size})`)
  t.equal(createHash('sha512').update(await readFile(join(second.dir, 'images', `${entry.id}.img`))).digest('hex'), entry.sha512)
  t.equal(await second.stop('SIGTERM'), 0, 'SIGTERM exits 0')
})
