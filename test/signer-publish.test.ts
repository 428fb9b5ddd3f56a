import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'

// publish against a real HTTP server on 127.0.0.1:0 that records the PUTs.

interface Put { url: string, contentType: string | undefined, body: string }

const dir = await mkdtemp(join(tmpdir(), 'imgdist-signer-publish-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })

const puts: Put[] = []
let answer: { status: number, body: unknown } = { status: 200, body: { ok: true, version: 1 } }
const body = async (req: IncomingMessage): Promise<string> => {
  let s = ''
  for await (const c of req) s += (c as Buffer).toString('utf8')
  return s
}
const server: Server = createServer((req, res) => {
  void body(req).then((b) => {
    puts.push({ url: req.url ?? '', contentType: req.headers['content-type'], body: b })
    res.writeHead(answer.status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(answer.body))
  })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

await sign('keygen', '--out', 'k')
await sign('init-root', '--name', 'pub', '--root-key', 'k.pub', '--index-key', 'k.pub', '--out', 'root.yaml')
await sign('sign-root', '--key', 'k.key', 'root.yaml')
await writeFile(join(dir, 'img.raw'), Buffer.alloc(40_000, 7))
await sign('add', 'img.raw', '--index', 'index.yaml', '--root', 'root.yaml', '--id', 'img', '--version', '1', '--disk-format', 'raw', '--piece-length', '16384')
await sign('sign', '--index', 'index.yaml', '--key', 'k.key')

t.test('success: root then index, as application/yaml, server answer printed', async (t) => {
  puts.length = 0
  answer = { status: 200, body: { message: 'accepted version 1' } }
  const r = await sign('publish', '--server', url, '--index', 'index.yaml', '--root', 'root.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(puts.map((p) => p.url), ['/v1/root.yaml', '/v1/index.yaml', /^\/v1\/torrents\/[0-9a-f]{40}\.torrent$/], 'root first, then index, then the torrent add wrote')
  t.equal(puts[2]?.contentType, 'application/x-bittorrent')
  t.equal(puts[0]?.contentType, 'application/yaml')
  t.equal(puts[0]?.body, await readFile(join(dir, 'root.yaml'), 'utf8'), 'root bytes sent as they are')
  t.equal(puts[1]?.body, await readFile(join(dir, 'index.yaml'), 'utf8'), 'index bytes sent as they are')
  t.match(r.stdout, /published index.yaml to .*\/v1\/index.yaml: HTTP 200 accepted version 1/)
})

t.test('a base URL with a path prefix', async (t) => {
  puts.length = 0
  answer = { status: 200, body: { message: 'ok' } }
  const r = await sign('publish', '--server', `${url}/imgdist/`, '--index', 'index.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(puts.map((p) => p.url), ['/imgdist/v1/index.yaml', /^\/imgdist\/v1\/torrents\//])
})

t.test('refusal: exit 1 with the server code and reason', async (t) => {
  puts.length = 0
  answer = { status: 409, body: { code: 'ROLLBACK', message: 'index version 1 is not above the current version 1' } }
  const r = await sign('publish', '--server', url, '--index', 'index.yaml')
  t.equal(r.code, 1)
  t.ok(isOneErrorLine(r.stderr), r.stderr)
  t.match(r.stderr, /^imgdist-sign: ROLLBACK: publish: .* refused index.yaml: HTTP 409: index version 1 is not above/)
  answer = { status: 400, body: 'not json at all' }
  const r2 = await sign('publish', '--server', url, '--root', 'root.yaml')
  t.equal(r2.code, 1)
  t.match(r2.stderr, /HTTP_ERROR: .*HTTP 400/)
})

t.test('no server: exit 2; wrong document kind: exit 2 before sending', async (t) => {
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const r = await sign('publish', '--server', `http://127.0.0.1:${port}`, '--index', 'index.yaml')
  t.equal(r.code, 2)
  t.ok(isOneErrorLine(r.stderr), r.stderr)
  t.match(r.stderr, /NETWORK_ERROR: publish: cannot reach/)
  puts.length = 0
  const wrong = await sign('publish', '--server', url, '--root', 'index.yaml')
  t.equal(wrong.code, 2)
  t.match(wrong.stderr, /index.yaml is an index document, given as --root/)
  t.equal(puts.length, 0, 'nothing was sent')
})
