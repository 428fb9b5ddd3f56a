import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { link, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { networkInterfaces } from 'node:os'
import bencode from 'bencode'
import { join } from 'node:path'
import type { ImageEntry } from '../../lib/schema.js'
import { startSeeder, type Origin } from './agent-origin.js'
import { imagesOf, waitFor, type AgentProc, type startAgent } from './agent-proc.js'
import type { Fixture } from './catalogue-fixture.js'

/**
 * For the interop tests against other BitTorrent programs (aria2c, libtorrent, Transmission):
 * ports to give them, their processes (logged, killed when the test ends), and the steps every
 * such test takes: a directory and a .torrent for the foreign client, an agent as the only seed.
 */

export interface Foreign { proc: ChildProcess, logs: string[], exited: Promise<number | null>, tail: (n?: number) => string }

/**
 * `spawn` whose processes get SIGKILL at teardown, pass or fail: a client left running would keep
 * seeding into the next test's swarm and keep tap from exiting.
 */
export function foreignProcs (t: { teardown: (fn: () => Promise<void>) => void }): { spawn: (cmd: string, args: string[]) => Foreign } {
  const all: Foreign[] = []
  t.teardown(async () => {
    await Promise.all(all.map(async (f) => {
      if (f.proc.exitCode !== null || f.proc.signalCode !== null) return
      f.proc.kill('SIGKILL')
      await f.exited
    }))
  })
  return {
    spawn: (cmd, args) => {
      const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      const logs: string[] = []
      proc.stdout?.on('data', (d: Buffer) => logs.push(d.toString()))
      proc.stderr?.on('data', (d: Buffer) => logs.push(d.toString()))
      // 'close', not 'exit': the output is complete when a test reads it after the wait
      const exited = new Promise<number | null>((resolve) => {
        proc.once('close', (code) => { resolve(code) })
        proc.once('error', (err) => { logs.push(`spawn ${cmd}: ${err.message}\n`); resolve(null) })
      })
      const f = { proc, logs, exited, tail: (n = 2000) => logs.join('').slice(-n) }
      all.push(f)
      return f
    }
  }
}

/** `dir`/`name` holding the image (a hard link), for a foreign client to seed from. */
export async function seedDirWith (fx: Fixture, e: ImageEntry, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  await link(fx.images.get(e.id) as string, join(dir, e.id))
  return dir
}

/** The image's .torrent written into `dir`, for a foreign client's command line; its path. */
export async function torrentFile (fx: Fixture, e: ImageEntry, dir: string): Promise<string> {
  const path = join(dir, `${e.id}.torrent`)
  await writeFile(path, fx.torrents.get(e.id) as Uint8Array)
  return path
}

/**
 * An agent (site `site`, in `dir`/`site`) that has the image and seeds it, with the webtorrent
 * seeder it got the image from closed: from then on the agent is the image's only seed.
 */
export async function agentAsOnlySeed (fx: Fixture, origin: Origin, e: ImageEntry, start: typeof startAgent, dir: string, site: string): Promise<AgentProc> {
  const seeder = await startSeeder(fx, [e.id])
  const a = await start(join(dir, site), site, { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] })
  await waitFor('agent has the image', async () => (await imagesOf(a)).find((i) => i.id === e.id && i.state === 'registered' && i.seeding), 60_000)
  await seeder.close()
  return a
}

/**
 * The other direction: a fresh agent fetches `e` while a foreign client (`who`) is its only seed.
 * Checks every byte came from peers and the registered file is the endorsed image; `dump` prints
 * the client's side if the wait fails.
 */
export async function agentFetchesFromForeign (t: { equal: (a: unknown, b: unknown, msg: string) => void, comment: (msg: string) => void },
  o: { who: string, fx: Fixture, origin: Origin, e: ImageEntry, start: typeof startAgent, dir: string, site: string, dump: () => Promise<void> | void }): Promise<AgentProc> {
  const a = await o.start(join(o.dir, o.site), o.site, { subscriptions: [{ url: o.origin.indexUrl, root: o.fx.rootPath, pollInterval: '2s' }] })
  const img = await waitFor(`registered from ${o.who}`, async () => (await imagesOf(a)).find((i) => i.id === o.e.id && i.state === 'registered'), 60_000)
    .catch(async (err) => { await o.dump(); t.comment(a.logs.slice(-30).join('\n')); throw err })
  t.equal(img.bytesFromPeers, o.e.size, `every byte came from the ${o.who} peer`)
  const file = await readFile(join(a.dir, 'images', `${o.e.id}.img`))
  t.equal(createHash('sha512').update(file).digest('hex'), o.e.sha512, 'the registered file is the endorsed image')
  return a
}

/**
 * Resolves once an agent's API counts bytes of the image uploaded. Every agent of the test is
 * asked: they all follow the same catalogue, so an agent of an earlier step fetches the image
 * too (from the seeding agent) and the foreign client may take its bytes from that one instead.
 */
export async function agentUploaded (agents: readonly AgentProc[], id: string): Promise<boolean> {
  return await waitFor('an agent counted its upload', async () => {
    for (const a of agents) if ((await imagesOf(a)).some((i) => i.id === id && (i.bytesUploaded ?? 0) > 0)) return true
    return undefined
  }, 10_000)
}

/** The machine's first IPv4 address outside 127/8, or undefined (then a test that needs one skips, saying so). */
export function nonLoopbackIpv4 (): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return undefined
}

/**
 * A tracker of the test's own on `host` that answers every announce with the one peer the test
 * named (`announcePeer`): a foreign client given a .torrent naming it (`torrentFor`) learns of
 * an agent without the agent learning of the client, so the client is the one that dials.
 * Hand-made rather than bittorrent-tracker because that one also handed Transmission its own
 * address, and Transmission keeps one address per IP: when both share the machine's IP, it
 * sometimes kept its own entry, dialled itself, and never tried the agent.
 */
export async function privateTracker (t: { teardown: (fn: () => Promise<void>) => void }, host: string): Promise<{
  announcePeer: (port: number) => void
  torrentFor: (torrent: Uint8Array) => Uint8Array
}> {
  let peers = new Uint8Array(0)
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(bencode.encode({ interval: 60, peers }))
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  const url = `http://${host}:${(server.address() as { port: number }).port}/announce`
  return {
    // compact form (BEP 23): the IPv4 address, then the port, big-endian
    announcePeer: (port) => {
      const b = Buffer.alloc(6)
      host.split('.').forEach((x, i) => { b[i] = Number(x) })
      b.writeUInt16BE(port, 4)
      peers = b
    },
    torrentFor: (torrent) => {
      const d = bencode.decode(torrent) as Record<string, unknown>
      delete d['announce-list']
      d.announce = url
      return bencode.encode(d)
    }
  }
}
