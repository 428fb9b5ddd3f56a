import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { link, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Server as TrackerServer } from 'bittorrent-tracker'
import WebTorrent from 'webtorrent'
import { makeFixture, type Fixture } from './catalogue-fixture.js'

/**
 * A stand-in index server for agent tests: serves the fixture's files under /v1/ (index with
 * ETag, root chain, torrents, a Range web seed, reports) and an HTTP tracker at /announce.
 */

export interface Origin {
  port: number
  indexUrl: string
  announce: string
  reports: unknown[]
  /** images whose web seed answers with flipped bytes */
  corruptWebSeed: Set<string>
  /** web seed requests served, by image id */
  webSeedHits: Map<string, number>
  /** roots served at /v1/root/<N>.yaml */
  roots: Map<number, string>
  tracker: TrackerServer
  close: () => Promise<void>
}

export async function startOrigin (fx: Fixture, opts: { port?: number } = {}): Promise<Origin> {
  const tracker = new TrackerServer({ http: false, udp: false, ws: false, stats: false, interval: 2000 })
  tracker.on('warning', () => {})
  tracker.on('error', () => {})
  const reports: unknown[] = []
  const corruptWebSeed = new Set<string>()
  const webSeedHits = new Map<string, number>()
  const roots = new Map<number, string>()

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x')
    const p = url.pathname
    if (p === '/announce' || p === '/scrape') { tracker.onHttpRequest(req, res); return }
    if (p === '/v1/index.yaml') {
      const body = await readFile(fx.indexPath)
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`
      if (req.headers['if-none-match'] === etag) { res.writeHead(304, { etag }).end(); return }
      res.writeHead(200, { etag, 'content-type': 'application/yaml' }).end(body)
      return
    }
    let m = /^\/v1\/root\/(\d+)\.yaml$/.exec(p)
    if (m !== null) {
      const text = roots.get(Number(m[1]))
      if (text === undefined) { res.writeHead(404).end(); return }
      res.writeHead(200).end(text)
      return
    }
    m = /^\/v1\/torrents\/([0-9a-f]{40})\.torrent$/.exec(p)
    if (m !== null) {
      const body = await readFile(join(fx.torrentDir, `${m[1] as string}.torrent`)).catch(() => undefined)
      if (body === undefined) { res.writeHead(404).end(); return }
      res.writeHead(200, { 'content-type': 'application/x-bittorrent' }).end(body)
      return
    }
    m = /^\/v1\/images\/([a-z0-9._-]+)$/.exec(p)
    if (m !== null) {
      const id = m[1] as string
      const path = fx.images.get(id)
      if (path === undefined) { res.writeHead(404).end(); return }
      webSeedHits.set(id, (webSeedHits.get(id) ?? 0) + 1)
      const size = (await stat(path)).size
      const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
      const start = r !== null ? Number(r[1]) : 0
      const end = r !== null && r[2] !== '' ? Math.min(Number(r[2]), size - 1) : size - 1
      res.writeHead(r !== null ? 206 : 200, {
        'content-length': end - start + 1, 'accept-ranges': 'bytes',
        ...(r !== null ? { 'content-range': `bytes ${start}-${end}/${size}` } : {})
      })
      if (req.method === 'HEAD') { res.end(); return }
      const stream = createReadStream(path, { start, end })
      if (corruptWebSeed.has(id)) {
        stream.on('data', (chunk) => { const b = Buffer.from(chunk as Buffer); for (let i = 0; i < b.length; i += 997) b[i] = (b[i] as number) ^ 0xff; res.write(b) })
        stream.on('end', () => res.end())
      } else stream.pipe(res)
      return
    }
    if (p === '/v1/reports' && req.method === 'POST') {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      reports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}')
      return
    }
    res.writeHead(404).end()
  }
  const server: Server = createServer((req, res) => { handle(req, res).catch(() => { res.writeHead(500).end() }) })
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    indexUrl: `http://127.0.0.1:${port}/v1/index.yaml`,
    announce: `http://127.0.0.1:${port}/announce`,
    reports, corruptWebSeed, webSeedHits, roots, tracker,
    close: async () => {
      if (!server.listening) return
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
      tracker.close()
    }
  }
}

/** A plain webtorrent client seeding fixture images (the origin seed), optionally rate-limited. */
export async function startSeeder (fx: Fixture, ids: string[], opts: { uploadLimit?: number } = {}): Promise<{ client: WebTorrent, close: () => Promise<void> }> {
  const client = new WebTorrent({ dht: false, lsd: false, utp: false, natUpnp: false, natPmp: false, torrentPort: 0, uploadLimit: opts.uploadLimit ?? -1 })
  client.on('error', () => {})
  for (const id of ids) {
    const dir = join(fx.dir, 'seed', id)
    await mkdir(dir, { recursive: true })
    await link(fx.images.get(id) as string, join(dir, id)).catch(() => {})
    await new Promise<void>((resolve) => {
      const t = client.add(Buffer.from(fx.torrents.get(id) as Uint8Array), { path: dir, strategy: 'rarest' })
      t.on('error', () => {})
      t.on('warning', () => {})
      if (t.done) resolve()
      t.once('done', () => { resolve() })
      t.once('ready', () => { if (t.done) resolve() })
    })
  }
  return { client, close: async () => { if (!client.destroyed) await new Promise<void>((resolve) => { client.destroy(() => { resolve() }) }) } }
}

/**
 * The usual start of an agent test: a temp dir (removed at teardown), a signed catalogue in it,
 * and a stand-in origin serving that catalogue (closed at teardown).
 */
export async function originTestbed (t: { teardown: (fn: () => unknown) => void }, prefix: string): Promise<{ dir: string, fx: Fixture, origin: Origin }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const fx = await makeFixture(join(dir, 'fx'))
  const origin = await startOrigin(fx)
  t.teardown(origin.close)
  return { dir, fx, origin }
}
