import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { agentFleet, imagesOf, waitFor, type ImageViewLite } from './helpers/agent-proc.js'

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

t.test('a pause outlasts a restart: an approved image waits for resume', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-pause-')
  const entry = await fx.addImage('paused-one', 512 * 1024, { pieceLength: 16 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, [entry.id])
  t.teardown(seeder.close)
  const { startAgent } = agentFleet(t)
  const cfg = { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }], policy: { approval: 'manual' } }
  const first = await startAgent(join(dir, 'site'), 'site-pause', cfg)
  await waitFor('awaiting approval', async () => (await imagesOf(first)).find((i) => i.state === 'awaiting-approval'))
  await first.cli('pause')
  t.equal(await first.stop('SIGTERM'), 0)

  const second = await startAgent(join(dir, 'site'), 'site-pause', cfg, first.configPath)
  const cli = second.cli
  const metrics = async (): Promise<string> => await (await fetch(`${second.api}/metrics`)).text()
  t.equal((JSON.parse(await cli('status', '--json')) as { paused: boolean }).paused, true, 'the restarted agent is still paused')
  t.ok(second.logs.some((l) => l.includes('paused since before this start')), 'and says so in its log')
  const st = JSON.parse(await cli('status', '--json')) as { pausedAt?: string, startedAt: string }
  t.ok(st.pausedAt !== undefined && st.pausedAt < st.startedAt, 'the pause is dated when the operator paused, before this start')
  t.match(await cli('status'), new RegExp(`PAUSED since ${st.pausedAt ?? 'x'}, running since ${st.startedAt}`), 'and status shows both')
  t.match(await metrics(), /^imgdist_agent_paused 1$/m, 'and in its metrics')
  t.match(await cli('approve', entry.id), /approved/)
  // The reconciler ticks every second: three ticks in which a running agent would have started.
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const held = (await imagesOf(second)).find((i) => i.id === entry.id)
  t.equal(held?.state, 'approved', 'the approved image did not start downloading while paused')
  t.match(await cli('resume'), /resumed/)
  await waitFor('registered after resume', async () => (await imagesOf(second)).find((i) => i.state === 'registered'), 30_000)
  t.equal((JSON.parse(await cli('status', '--json')) as { paused: boolean }).paused, false)
  t.match(await metrics(), /^imgdist_agent_paused 0$/m)
})

t.test('SIGTERM mid-download keeps the byte counters of its last second', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-term-')
  const entry = await fx.addImage('term', 8 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
  let seeder = await startSeeder(fx, [entry.id], { uploadLimit: 1024 * 1024 })
  t.teardown(async () => { await seeder.close() })
  const { startAgent } = agentFleet(t)
  const cfg = { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '1s' }] }
  const a = await startAgent(join(dir, 'site'), 'site-t', cfg)
  // The reconciler saves a job's counters once a second (updatedAt says when it last did). Stop
  // the agent just after such a save, with bytes counted since (the live counters ahead of the
  // saved ones): the next save would be most of a second away, so only the save of the stopped
  // job can keep those bytes.
  const seen = await waitFor('bytes counted since a save made a moment ago', async () => {
    const i = (await imagesOf(a) as Array<ImageViewLite & { updatedAt: string }>).find((x) => x.id === entry.id)
    return i?.state === 'downloading' && i.progress > 0.2 && i.progress < 0.8 && i.bytesThisRun > i.bytesFromPeers &&
      Date.now() - Date.parse(i.updatedAt) < 300 ? i : undefined
  })
  t.equal(await a.stop('SIGTERM'), 0)
  // with no seeder the restarted agent fetches nothing: it shows what the first run saved
  await seeder.close()
  const b = await startAgent(join(dir, 'site'), 'site-t', cfg, a.configPath)
  const saved = await waitFor('resumed', async () => (await imagesOf(b)).find((i) => i.id === entry.id && i.state === 'downloading'))
  t.equal(saved.bytesThisRun, 0, 'nothing fetched yet in the second run')
  t.ok(saved.bytesFromPeers >= seen.bytesThisRun,
    `the first run saved ${saved.bytesFromPeers} bytes from peers: at least the ${seen.bytesThisRun} it had counted before SIGTERM (its last periodic save had ${seen.bytesFromPeers})`)
  seeder = await startSeeder(fx, [entry.id], { uploadLimit: 4 * 1024 * 1024 })
  const img = await waitFor('registered', async () => (await imagesOf(b)).find((i) => i.state === 'registered'), 30_000)
  t.ok(img.resumedBytes > 0, `resumed ${img.resumedBytes}`)
  // Every byte of the image came from the seeder in one run or the other.
  const m = await (await fetch(`${b.api}/metrics`)).text()
  const peers = Number(/^imgdist_agent_bytes_downloaded\{source="peers"\} (\d+)$/m.exec(m)?.[1])
  t.ok(peers >= entry.size, `bytes from peers over both runs (${peers}) are at least the image (${entry.size})`)
  await b.stop('SIGTERM')
})
