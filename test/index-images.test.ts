import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import bencode from 'bencode'
import t, { type Test } from 'tap'
import { buildServer } from '../index-server/server.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { indexBytes, makeServerDir } from './index-fixture.js'

async function setup (tt: Test) {
  const sd = await makeServerDir(tt)
  const entry = await sd.fx.addImage('img-a', 300_000, { pieceLength: 16384 })
  const app = await buildServer({ dataDir: sd.dataDir })
  tt.teardown(async () => await app.close())
  const put = await app.inject({ method: 'PUT', url: '/v1/index.yaml', headers: { 'content-type': 'application/yaml' }, payload: await indexBytes(sd.fx) })
  tt.equal(put.statusCode, 200)
  const bytes = await readFile(sd.fx.images.get('img-a') as string)
  return { ...sd, app, entry, bytes }
}

t.test('image upload: only the signed bytes are kept', async (t) => {
  const { app, entry, bytes, dataDir } = await setup(t)
  const url = '/v1/images/img-a'
  t.equal((await app.inject({ url })).statusCode, 404, 'not served before the bytes are here')

  const wrong = Buffer.from(bytes)
  wrong[1000] = (wrong[1000] as number) ^ 0xff
  const cases: Array<[string, string, Buffer, number, string]> = [
    ['corrupted bytes', url, wrong, 422, 'HASH_MISMATCH'],
    ['short upload', url, bytes.subarray(0, 1000), 422, 'HASH_MISMATCH'],
    ['too long', url, Buffer.concat([bytes, Buffer.from('x')]), 413, 'TOO_LARGE'],
    ['unlisted id', '/v1/images/img-zzz', bytes, 404, 'NOT_FOUND'],
    ['unsafe id', '/v1/images/..%2Findex.yaml', bytes, 400, 'BAD_REQUEST']
  ]
  for (const [what, u, payload, status, code] of cases) {
    const r = await app.inject({ method: 'PUT', url: u, headers: { 'content-type': 'application/octet-stream' }, payload })
    t.equal(r.statusCode, status, `${what}: status`)
    t.equal(r.json().code, code, `${what}: code`)
  }
  t.same(await readdir(join(dataDir, 'images')), [], 'nothing kept, no temp files')

  const ok = await app.inject({ method: 'PUT', url, headers: { 'content-type': 'application/octet-stream' }, payload: bytes })
  t.equal(ok.statusCode, 200, ok.body)
  t.match(ok.json(), { accepted: true, id: 'img-a', size: entry.size, sha512: entry.sha512 })
  t.same(await readdir(join(dataDir, 'images')), ['img-a'])
  t.ok(await app.imgdist.images.isVerified(entry))
  const noType = await app.inject({ method: 'PUT', url, payload: bytes })
  t.equal(noType.statusCode, 200, 'any content type is streamed as bytes')
  t.match((await app.inject({ url: '/metrics' })).body, /imgdist_index_image_uploads_total\{result="refused",code="HASH_MISMATCH"\} 2/)
})

t.test('GET|HEAD image: web seed with Range', async (t) => {
  const { app, entry, bytes } = await setup(t)
  await app.inject({ method: 'PUT', url: '/v1/images/img-a', payload: bytes })
  const url = '/v1/images/img-a'
  const full = await app.inject({ url })
  t.equal(full.statusCode, 200)
  t.equal(full.headers['content-length'], String(entry.size))
  t.equal(full.headers['accept-ranges'], 'bytes')
  t.equal(full.headers.etag, `"sha512-${entry.sha512.slice(0, 32)}"`)
  t.equal(createHash('sha512').update(full.rawPayload).digest('hex'), entry.sha512)

  const head = await app.inject({ method: 'HEAD', url })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], String(entry.size))
  t.equal(head.rawPayload.byteLength, 0)

  const part = await app.inject({ url, headers: { range: 'bytes=100-199' } })
  t.equal(part.statusCode, 206)
  t.equal(part.headers['content-range'], `bytes 100-199/${entry.size}`)
  t.equal(part.headers['content-length'], '100')
  t.same(part.rawPayload, bytes.subarray(100, 200))

  const open = await app.inject({ url, headers: { range: `bytes=${entry.size - 10}-` } })
  t.equal(open.statusCode, 206)
  t.same(open.rawPayload, bytes.subarray(entry.size - 10))
  const suffix = await app.inject({ url, headers: { range: 'bytes=-5' } })
  t.same(suffix.rawPayload, bytes.subarray(entry.size - 5))
  const past = await app.inject({ url, headers: { range: `bytes=${entry.size - 1}-${entry.size + 100}` } })
  t.equal(past.headers['content-range'], `bytes ${entry.size - 1}-${entry.size - 1}/${entry.size}`, 'end clamped')

  const bad = await app.inject({ url, headers: { range: `bytes=${entry.size}-` } })
  t.equal(bad.statusCode, 416)
  t.equal(bad.headers['content-range'], `bytes */${entry.size}`)
  const headPart = await app.inject({ method: 'HEAD', url, headers: { range: 'bytes=0-9' } })
  t.equal(headPart.statusCode, 206)
  t.equal(headPart.headers['content-length'], '10')
  const staleIfRange = await app.inject({ url, headers: { range: 'bytes=0-9', 'if-range': '"old"' } })
  t.equal(staleIfRange.statusCode, 200, 'If-Range mismatch: whole file')
  const multi = await app.inject({ url, headers: { range: 'bytes=0-1,5-6' } })
  t.equal(multi.statusCode, 200, 'multi-range: whole file')

  const m = (await app.inject({ url: '/metrics' })).body
  const served = Number(/imgdist_index_webseed_bytes_total (\d+)/.exec(m)?.[1])
  t.equal(served, entry.size * 3 + 100 + 10 + 5 + 1, 'bytes served are counted')
})

t.test('a file replaced behind the server is no longer served', async (t) => {
  const { app, bytes, dataDir } = await setup(t)
  await app.inject({ method: 'PUT', url: '/v1/images/img-a', payload: bytes })
  const wrong = Buffer.from(bytes)
  wrong[0] = (wrong[0] as number) ^ 1
  await writeFile(join(dataDir, 'images', 'img-a'), wrong)
  t.equal((await app.inject({ url: '/v1/images/img-a' })).statusCode, 404)
})

t.test('torrents: upload checked against the index, served with tracker and web seed', async (t) => {
  const { app, fx, entry } = await setup(t)
  const file = `/v1/torrents/${entry.infoHash}.torrent`
  t.equal((await app.inject({ url: file })).statusCode, 404)
  const raw = fx.torrents.get('img-a') as Uint8Array
  const other = await fx.addImage('img-b', 5000) // not published: the server's index does not list it
  const refused = await app.inject({ method: 'PUT', url: `/v1/torrents/${other.infoHash}.torrent`, headers: { 'content-type': 'application/x-bittorrent' }, payload: Buffer.from(fx.torrents.get('img-b') as Uint8Array) })
  t.equal(refused.statusCode, 404)
  const mismatch = await app.inject({ method: 'PUT', url: file, headers: { 'content-type': 'application/x-bittorrent' }, payload: Buffer.from(fx.torrents.get('img-b') as Uint8Array) })
  t.equal(mismatch.statusCode, 400)
  t.equal(mismatch.json().code, 'TORRENT_INVALID')
  const garbage = await app.inject({ method: 'PUT', url: file, headers: { 'content-type': 'application/x-bittorrent' }, payload: Buffer.from('not bencode') })
  t.equal(garbage.json().code, 'TORRENT_INVALID')
  const ok = await app.inject({ method: 'PUT', url: file, headers: { 'content-type': 'application/x-bittorrent' }, payload: Buffer.from(raw) })
  t.equal(ok.statusCode, 200, ok.body)

  const got = await app.inject({ url: file, headers: { host: 'index.example.org:8080' } })
  t.equal(got.statusCode, 200)
  t.equal(got.headers['content-type'], 'application/x-bittorrent')
  const parsed = parseTorrent(got.rawPayload, { infoHash: entry.infoHash, length: entry.size })
  t.equal(parsed.infoHash, entry.infoHash, 'info hash unchanged by the injection')
  t.same(parsed.announce, ['http://index.example.org:8080/announce'])
  t.same(parsed.webSeeds, ['http://index.example.org:8080/v1/images/img-a'])
  const decoded = bencode.decode(got.rawPayload) as Record<string, unknown>
  t.ok(Array.isArray(decoded['announce-list']))
  t.equal((await app.inject({ url: `/v1/torrents/${'0'.repeat(40)}.torrent` })).statusCode, 404)
  t.equal((await app.inject({ url: '/v1/torrents/xyz.torrent' })).statusCode, 400)
})

/** A GET over real HTTP with a Host header of the client's choosing (fetch would not send it). */
async function getWithHost (url: string, host: string, extra: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { host, ...extra } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('a torrent whose URLs come from the Host header is not publicly cacheable; with a public URL it is', async (t) => {
  const { app, fx, entry, dataDir } = await setup(t)
  const file = `/v1/torrents/${entry.infoHash}.torrent`
  const put = await app.inject({ method: 'PUT', url: file, headers: { 'content-type': 'application/x-bittorrent' }, payload: Buffer.from(fx.torrents.get('img-a') as Uint8Array) })
  t.equal(put.statusCode, 200)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const evil = await getWithHost(`${url}${file}`, 'evil.example:666')
  t.equal(evil.status, 200)
  t.same(parseTorrent(evil.body).announce, ['http://evil.example:666/announce'], 'the URL is derived from the request')
  t.equal(evil.headers.vary, 'Host', 'caches key the response on Host')
  t.equal(evil.headers['cache-control'], 'private, max-age=300', 'and no shared cache keeps it')
  await app.close()

  const proxied = await buildServer({ dataDir, trustProxy: true })
  const viaProxy = await proxied.inject({ url: file, headers: { host: 'a.example', 'x-forwarded-host': 'evil.example' } })
  t.same(parseTorrent(viaProxy.rawPayload).announce, ['http://evil.example/announce'])
  t.equal(viaProxy.headers.vary, 'Host, X-Forwarded-Host, X-Forwarded-Proto', 'behind a trusted proxy the forwarded headers shape it too')
  t.equal(viaProxy.headers['cache-control'], 'private, max-age=300')
  await proxied.close()

  const pub = await buildServer({ dataDir, publicUrl: 'https://images.example.org/' })
  t.teardown(async () => await pub.close())
  const pubUrl = await pub.listen({ host: '127.0.0.1', port: 0 })
  const fixed = await getWithHost(`${pubUrl}${file}`, 'evil.example:666')
  t.same(parseTorrent(fixed.body).announce, ['https://images.example.org/announce'], 'the configured URL, whatever the Host')
  t.equal(fixed.headers.vary, undefined)
  t.equal(fixed.headers['cache-control'], 'public, max-age=300')
})

t.test('tracker answers announces for listed info hashes only', async (t) => {
  const { app, entry } = await setup(t)
  // Every byte percent-encoded: escape() leaves 0x2b as '+', which a query string reads as a space
  // (this test failed whenever the random info hash held that byte).
  const bin = (hex: string): string => [...Buffer.from(hex, 'hex')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('')
  const q = (ih: string): string => `/announce?info_hash=${bin(ih)}&peer_id=${bin('2d4151303030302d' + '11'.repeat(12))}&port=6881&left=0&compact=1&event=started`
  const ok = await app.inject({ url: q(entry.infoHash) })
  t.equal(ok.statusCode, 200)
  const body = bencode.decode(ok.rawPayload) as Record<string, unknown>
  t.equal(body['failure reason'], undefined)
  t.type(body.interval, 'number')
  const no = bencode.decode((await app.inject({ url: q('ab'.repeat(20)) })).rawPayload) as Record<string, Uint8Array>
  t.match(Buffer.from(no['failure reason'] as Uint8Array).toString(), /only the images of its catalogue/)
  const scrape = await app.inject({ url: `/scrape?info_hash=${bin(entry.infoHash)}` })
  t.equal(scrape.statusCode, 200)
  t.match((await app.inject({ url: '/metrics' })).body, /imgdist_index_tracker_peers 1/)
})
