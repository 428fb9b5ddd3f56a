import { execFile } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { createApi, type AgentControl, type AgentStatus } from '../agent/api.js'
import { buildServer } from '../index-server/server.js'
import { ImgdistError } from '../lib/errors.js'
import { makeServerDir } from './index-fixture.js'

/*
 * The index server and the agent's API answer every error as {code, message}, so that scripts,
 * imgdist-sign publish and imgdist-agent read one shape.
 */

const AGENT_BIN = join(import.meta.dirname, '..', 'dist', 'bin', 'imgdist-agent.js')
const run = promisify(execFile)

type Case = readonly [what: string, path: string, init: RequestInit | undefined, status: number, code: string]

/** Each request answers `status` with exactly {code, message}, `code` the one expected. */
async function expectEnvelopes (t: Test, base: string, cases: readonly Case[]): Promise<void> {
  for (const [what, path, init, status, code] of cases) {
    const r = await fetch(base + path, init)
    t.equal(r.status, status, what)
    const body = await r.json() as Record<string, unknown>
    t.same(Object.keys(body).sort(), ['code', 'message'], `${what}: ${JSON.stringify(body)}`)
    t.equal(body.code, code, what)
    t.ok(typeof body.message === 'string' && body.message !== '', `${what}: a message`)
  }
}

t.test('the index server: {code, message}', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  await expectEnvelopes(t, url, [
    ['no index yet', '/v1/index.yaml', undefined, 404, 'NOT_FOUND'],
    ['unknown route', '/v1/nothing', undefined, 404, 'NOT_FOUND'],
    ['not YAML', '/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: 'signed: [' }, 400, 'YAML_INVALID']
  ])
})

t.test('the index server: a body refused for its Content-Type says which type to send', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  // what curl --data-binary sends without -H (fastify refuses a type no route parses before the route runs)
  const form = 'application/x-www-form-urlencoded'
  const cases = [
    ['PUT', '/v1/index.yaml', form, /^Content-Type "application\/x-www-form-urlencoded" is not accepted by PUT \/v1\/index\.yaml; send application\/yaml, application\/x-yaml, text\/yaml$/],
    ['PUT', '/v1/root.yaml', form, /is not accepted by PUT \/v1\/root\.yaml; send application\/yaml/],
    ['POST', '/v1/reports', form, /is not accepted by POST \/v1\/reports; send application\/json$/],
    ['PUT', `/v1/torrents/${'a'.repeat(40)}.torrent`, form, /is not accepted by PUT \/v1\/torrents\/a{40}\.torrent; send application\/x-bittorrent$/]
  ] as const
  for (const [method, path, type, advice] of cases) {
    const r = await fetch(url + path, { method, headers: { 'content-type': type }, body: 'x' })
    t.equal(r.status, 415, `${method} ${path} as ${type}`)
    const body = await r.json() as { code: string, message: string }
    t.equal(body.code, 'UNSUPPORTED_MEDIA_TYPE')
    t.match(body.message, advice, body.message)
  }
})

t.test('imgdist-agent pointed at a server that is not an agent (--api with the index server\'s URL) says so', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const app = await buildServer({ dataDir })
  t.teardown(async () => await app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  for (const args of [['status'], ['approve', 'some-image']]) {
    const r = await run(process.execPath, [AGENT_BIN, ...args, '--api', url]).then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, /^imgdist-agent: NOT_FOUND: http:\/\/127\.0\.0\.1:\d+\/v1\/\S+: no route .*; is --api the address of an imgdist-agent's api\.listen\?\n$/, r.stderr)
  }
})

t.test('imgdist-agent behind a proxy that answers an error of its own prints the status and the text, on one line', async (t) => {
  const proxy = createServer((_req, res) => { res.writeHead(502, { 'content-type': 'text/html' }).end('<html>\n<body>502 Bad Gateway</body>\n</html>\n') })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { proxy.close() })
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  const r = await run(process.execPath, [AGENT_BIN, 'pause', '--api', url]).then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
  t.equal(r.code, 1)
  t.equal(r.stderr, 'imgdist-agent: HTTP_ERROR: HTTP 502: <html> <body>502 Bad Gateway</body> </html>\n')
})

t.test('the agent API: {code, message}, and imgdist-agent prints the code', async (t) => {
  const ctl: AgentControl = {
    status: () => ({ site: 'test' }) as AgentStatus,
    images: () => [],
    peers: () => [],
    approve: async (id) => { throw new ImgdistError('POLICY_REJECTED', `${id} is rejected by this site's policy`) },
    retry: async () => ({ images: [], messages: [] }),
    pause: async () => ({ changed: true }),
    resume: async () => ({ changed: true }),
    metrics: new Registry()
  }
  const api = await createApi(ctl)
  t.teardown(async () => await api.close())
  const url = await api.listen({ host: '127.0.0.1', port: 0 })
  await expectEnvelopes(t, url, [
    ['an action refused', '/v1/images/deny-me/approve', { method: 'POST' }, 409, 'POLICY_REJECTED'],
    ['an image the site does not have', '/v1/images/nope/retry', { method: 'POST' }, 404, 'NOT_FOUND'],
    ['unknown route', '/v1/nothing', undefined, 404, 'NOT_FOUND'],
    ['malformed body', '/v1/pause', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }, 400, 'BAD_REQUEST']
  ])

  const cli = await run(process.execPath, [AGENT_BIN, 'approve', 'deny-me', '--api', url]).then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
  t.equal(cli.code, 1)
  t.equal(cli.stderr, 'imgdist-agent: POLICY_REJECTED: deny-me is rejected by this site\'s policy\n')
})
