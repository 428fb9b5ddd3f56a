import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import bencode from 'bencode'
import { pino, type Logger } from 'pino'
import { buildTorrent, parseTorrent } from '../../lib/torrent-meta.js'
import { hashFile, writeRandomFile } from './catalogue-fixture.js'

/** A random image, its torrent (64 KiB pieces), and options for engines from the built dist/ code. */
export async function engineFixture (t: { teardown: (fn: () => Promise<void>) => void }, size: number) {
  const { Swarm } = await import(resolve('dist/swarm/swarm.js')) as typeof import('../../swarm/swarm.js')
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-wire-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const pieceLength = 64 * 1024
  const src = join(dir, 'src.img')
  await writeRandomFile(src, size)
  const hashed = await hashFile(src, pieceLength)
  const tor = buildTorrent({ name: 'img.raw', length: size, pieceLength, pieces: hashed.pieces })
  const log = pino({ level: process.env.WIRE_TEST_LOG ?? 'silent' })
  const opts = (name: string, peerIdPrefix?: string): ConstructorParameters<typeof Swarm>[0] => ({ dataDir: join(dir, name), torrentPort: 0, dht: { enabled: false, bootstrap: [] }, lsd: false, pex: true, trackers: [], uploadLimit: 0, downloadLimit: 0, maxConns: 20, peerIdPrefix })
  type Options = ConstructorParameters<typeof Swarm>[0]
  /** Two downloading engines, `a` and `b`, of `torrent` (default the fixture's), ready for peers and knowing none; closed at teardown. `logs` replaces the fixture's logger per engine. */
  const twoDownloaders = async (extra: Partial<Options> = {}, torrent: { infoHash: string, bytes: Uint8Array } = tor, logs: { a?: Logger, b?: Logger } = {}) => {
    const a = new Swarm({ ...opts('a'), ...extra }, logs.a ?? log)
    const b = new Swarm({ ...opts('b'), ...extra }, logs.b ?? log)
    t.teardown(async () => { await a.close(); await b.close() })
    const ha = a.add(torrent.infoHash, torrent.bytes, [])
    const hb = b.add(torrent.infoHash, torrent.bytes, [])
    const [pa, pb] = [await a.listening(), await b.listening()]
    const deadline = Date.now() + 30_000
    while (!(ha.ready && hb.ready)) {
      if (Date.now() > deadline) throw new Error('the two downloaders did not get ready in 30 s')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return { a, b, ha, hb, ports: [pa, pb], addrs: [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`] }
  }
  type Engine = InstanceType<typeof Swarm>
  /** `engine` seeds `file` (default the fixture's image) as `torrent`: the file placed where a finished download would be, hash-checked, complete. */
  const seedFile = async (engine: Engine, file = src, torrent: { infoHash: string, bytes: Uint8Array } = tor) => {
    await mkdir(engine.downloadDir(torrent.infoHash), { recursive: true })
    await copyFile(file, join(engine.downloadDir(torrent.infoHash), 'img.raw'))
    const h = engine.add(torrent.infoHash, torrent.bytes, [])
    await h.done
    return h
  }
  /** Another image in the fixture's dir: `pieces` random pieces of `pieceLength` bytes, its bytes and torrent. */
  const image = async (name: string, pieceLength: number, pieces: number) => {
    const file = join(dir, name)
    await writeRandomFile(file, pieces * pieceLength)
    const h = await hashFile(file, pieceLength)
    return { file, data: await readFile(file), tor: buildTorrent({ name: 'img.raw', length: h.size, pieceLength, pieces: h.pieces }) }
  }
  /** A seeding engine of `file` and a downloading one, ready and knowing no peers (closed at teardown); `leechLog` replaces the fixture's logger for the downloader. */
  const seedAndLeecher = async (file = src, torrent: { infoHash: string, bytes: Uint8Array } = tor, leechLog: Logger = log) => {
    const seeder = new Swarm(opts('seed'), log)
    const leecher = new Swarm(opts('leech'), leechLog)
    t.teardown(async () => { await leecher.close(); await seeder.close() })
    const s = await seedFile(seeder, file, torrent)
    const l = leecher.add(torrent.infoHash, torrent.bytes, [])
    while (!l.ready) await new Promise((resolve) => setTimeout(resolve, 20))
    return { seeder, leecher, s, l, seedAddr: `127.0.0.1:${await seeder.listening()}`, leechPort: await leecher.listening() }
  }
  return { Swarm, dir, src, size, hashed, tor, log, opts, twoDownloaders, seedFile, image, seedAndLeecher }
}

/** A torrent with info.private = 1 (BEP 27) and the same pieces: another info hash. */
export function privateTorrent (bytes: Uint8Array): { infoHash: string, bytes: Uint8Array } {
  const d = bencode.decode(bytes) as { info: Record<string, unknown> }
  d.info.private = 1
  const out = bencode.encode(d) as Uint8Array
  return { infoHash: parseTorrent(out).infoHash, bytes: out }
}
