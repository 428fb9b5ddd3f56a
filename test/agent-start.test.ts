import { createServer, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { makeFixture } from './helpers/catalogue-fixture.js'
import { startAgent } from './helpers/agent-proc.js'

// Start-up order (agent/agent.ts, API_HEAD_START_MS): the first catalogue round runs before the
// HTTP API is built, but a catalogue server that never answers holds the API back for a bounded
// time only.

t.test('the API comes up while the first catalogue poll is still waiting for an answer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-start-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const fx = await makeFixture(join(dir, 'catalogue'))
  // accepts connections, reads nothing, answers nothing
  const held: Socket[] = []
  const silent = createServer((s) => { held.push(s) })
  await new Promise<void>((resolve) => { silent.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { for (const s of held) s.destroy(); await new Promise((resolve) => silent.close(resolve)) })
  const port = (silent.address() as { port: number }).port

  const a = await startAgent(join(dir, 'site'), 'site-s', { subscriptions: [{ url: `http://127.0.0.1:${port}/v1/index.yaml`, root: fx.rootPath, pollInterval: '1m' }] })
  t.teardown(async () => { await a.stop('SIGKILL') })
  const status = await a.get<{ site: string, catalogues: Array<{ lastPoll?: string, lastSuccess?: string, pollErrors: number }> }>('/v1/status')
  t.equal(status.site, 'site-s', 'the API answers')
  t.ok(held.length >= 1, 'the agent is connected to the silent catalogue server')
  t.ok(status.catalogues[0]?.lastPoll !== undefined, 'the first poll has begun')
  t.equal(status.catalogues[0]?.lastSuccess, undefined, 'and has not succeeded')
  t.equal(status.catalogues[0]?.pollErrors, 0, 'nor failed: the API did not wait for it to end')
})
