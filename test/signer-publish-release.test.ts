import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildServer } from '../index-server/server.js'
import { dataPaths, ensureDataDirs } from '../index-server/data-dir.js'
import { installRoot } from '../index-server/catalogue-store.js'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'

/**
 * The README's endorser flow ends with `imgdist-sign publish`; against a real index server it
 * must leave a release sites can download: index, torrent and bytes. (It used to send the index
 * alone, and agents then failed on the torrent's 404.)
 */

const dir = await mkdtemp(join(tmpdir(), 'imgdist-publish-release-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })

await sign('keygen', '--out', 'k')
await sign('init-root', '--name', 'rel', '--root-key', 'k.pub', '--index-key', 'k.pub', '--out', 'root.yaml')
await sign('sign-root', '--key', 'k.key', 'root.yaml')
const image = Buffer.alloc(300_000)
for (let i = 0; i < image.length; i++) image[i] = (i * 7919) % 251
await writeFile(join(dir, 'img.raw'), image)
await sign('add', 'img.raw', '--index', 'index.yaml', '--root', 'root.yaml', '--id', 'img-1', '--version', '1', '--disk-format', 'raw', '--piece-length', '16384')
await sign('sign', '--index', 'index.yaml', '--key', 'k.key')

const dataDir = join(dir, 'server')
await ensureDataDirs(dataPaths(dataDir))
await installRoot(dataPaths(dataDir), await readFile(join(dir, 'root.yaml')), new Date())
const app = await buildServer({ dataDir })
t.teardown(async () => await app.close())
const url = await app.listen({ host: '127.0.0.1', port: 0 })

t.test('a bad --image is refused before anything is sent', async (t) => {
  await writeFile(join(dir, 'short.raw'), image.subarray(1))
  for (const [spec, why] of [['img-1=short.raw', /has 299999 bytes, the index says 300000/], ['nope=img.raw', /lists no image "nope"/], ['img-1', /wants ID=FILE/]] as const) {
    const r = await sign('publish', '--server', url, '--index', 'index.yaml', '--image', spec)
    t.equal(r.code, 2, `${spec}: usage error`)
    t.ok(isOneErrorLine(r.stderr), r.stderr)
    t.match(r.stderr, why)
  }
  t.equal((await fetch(`${url}/v1/index.yaml`)).status, 404, 'nothing was published')
})

t.test('publish --index --image: index, torrent and bytes on the server, each answered', async (t) => {
  const r = await sign('publish', '--server', url, '--index', 'index.yaml', '--image', 'img-1=img.raw')
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.match(lines, [/published index.yaml to .*\/v1\/index.yaml: HTTP 200/, /published torrents\/[0-9a-f]{40}\.torrent to .*\/v1\/torrents\/[0-9a-f]{40}\.torrent: HTTP 200/, /published img.raw to .*\/v1\/images\/img-1: HTTP 200/])
  const ih = /torrents\/([0-9a-f]{40})\.torrent/.exec(r.stdout)?.[1] as string
  const torrent = await fetch(`${url}/v1/torrents/${ih}.torrent`)
  t.equal(torrent.status, 200, 'the torrent is served')
  const bytes = await fetch(`${url}/v1/images/img-1`)
  t.equal(bytes.status, 200, 'the web seed serves the image')
  t.ok(Buffer.from(await bytes.arrayBuffer()).equals(image), 'byte for byte')
})

t.test('a torrent that is not where add wrote it is left out with a note; the rest still goes', async (t) => {
  await sign('add', 'img.raw', '--index', 'index.yaml', '--root', 'root.yaml', '--id', 'img-2', '--version', '2', '--disk-format', 'raw', '--piece-length', '32768', '--torrent-dir', 'elsewhere')
  await sign('sign', '--index', 'index.yaml', '--key', 'k.key')
  const r = await sign('publish', '--server', url, '--index', 'index.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /publish: img-2: no .*torrents\/[0-9a-f]{40}\.torrent here; its torrent is not uploaded/)
  const withDir = await sign('publish', '--server', url, '--index', 'index.yaml', '--torrent-dir', 'elsewhere')
  t.equal(withDir.code, 1, 'the index is not raised this time: refused')
  t.match(withDir.stderr, /VERSION_NOT_RAISED/)
})
