import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { startIndexDaemon } from '../index-server/daemon.js'
import { resolveServeConfig } from '../index-server/server-config.js'
import { makeServerDir } from './index-fixture.js'

/**
 * The index server's log under journald: at the default level (info) a request adds no line;
 * fastify's default was two ("incoming request", "request completed") for every held GET,
 * report and announce of every site. At debug each request is one line with its status.
 * The real daemon, real HTTP, its pino output captured.
 */

async function logOf (t: Test, level: string): Promise<Array<Record<string, unknown>>> {
  const { dataDir } = await makeServerDir(t)
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  const config = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort: 0, dht: false })
  const daemon = await startIndexDaemon({ ...config, logLevel: level, seeding: { ...config.seeding, enabled: false } } as typeof config, { logger: { level, stream } })
  for (const path of ['/healthz', '/metrics', '/v1/no-such-thing']) await (await fetch(daemon.url + path)).arrayBuffer()
  await daemon.close()
  return lines
}

t.test('info: no line per request', async (t) => {
  const lines = await logOf(t, 'info')
  t.ok(lines.some((l) => l.msg === 'imgdist-index serving'), 'the log was captured')
  t.same(lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed' || l.msg === 'request'), [])
})

t.test('debug: one line per request, with its status', async (t) => {
  const lines = await logOf(t, 'debug')
  const reqs = lines.filter((l) => l.msg === 'request')
  t.same(reqs.map((l) => [l.url, l.statusCode]).sort(), [['/healthz', 200], ['/metrics', 200], ['/v1/no-such-thing', 404]])
  t.same(lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed'), [], 'not fastify\'s two lines as well')
})
