import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { originTestbed } from './helpers/agent-origin.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'
import { agentAsOnlySeed, agentFetchesFromForeign, agentUploaded, foreignProcs, nonLoopbackIpv4, privateTracker, seedDirWith, type Foreign } from './helpers/foreign-client.js'
import { freePort } from './helpers/free-port.js'

const DAEMON = '/usr/bin/transmission-daemon'
const sha512 = (b: Uint8Array): string => createHash('sha512').update(b).digest('hex')

interface SourceView { address: string, type: string, uploaded: number }
interface TrPeer { address: string, port: number, isIncoming: boolean, isEncrypted: boolean, clientName: string }
interface TorrentView { id: number, status: number, leftUntilDone: number, haveValid: number, error: number, errorString: string, peersConnected: number, peers: TrPeer[] }
const FIELDS = ['id', 'status', 'leftUntilDone', 'haveValid', 'error', 'errorString', 'peersConnected', 'peers']
const STOPPED = 0

interface Transmission { daemon: Foreign, rpc: <T>(method: string, args?: Record<string, unknown>) => Promise<T>, torrent: (id: number) => Promise<TorrentView> }

/**
 * A transmission-daemon of its own: config dir, RPC port and peer port, on loopback only, with
 * nothing that could find peers but the test's tracker (no DHT, LPD, PEX) and nothing the engine
 * does not speak (no uTP). Encryption stays at Debian's default, "preferred", under which
 * Transmission still takes the plain BitTorrent handshake the engine sends.
 *
 * Transmission never dials an address in 127/8 (it drops such peers from tracker replies as
 * "martian"), so on loopback the agent opens every connection. The last test binds
 * Transmission (`bindIpv4`) to the machine's own non-loopback address instead, where it dials.
 */
async function transmission (foreign: ReturnType<typeof foreignProcs>, configDir: string, bindIpv4 = '127.0.0.1', extra: Record<string, unknown> = {}): Promise<Transmission> {
  await mkdir(configDir, { recursive: true })
  const rpcPort = await freePort()
  await writeFile(join(configDir, 'settings.json'), JSON.stringify({
    'dht-enabled': false, 'lpd-enabled': false, 'pex-enabled': false, 'utp-enabled': false, 'port-forwarding-enabled': false,
    encryption: 1,
    'bind-address-ipv4': bindIpv4, 'bind-address-ipv6': '::1', 'peer-port': await freePort(), 'peer-port-random-on-start': false,
    'rpc-bind-address': '127.0.0.1', 'rpc-port': rpcPort, 'rpc-authentication-required': false, 'rpc-whitelist-enabled': true, 'rpc-whitelist': '127.0.0.1',
    'download-dir': join(configDir, 'downloads'), 'incomplete-dir-enabled': false, 'rename-partial-files': false, 'watch-dir-enabled': false,
    'ratio-limit-enabled': false, 'idle-seeding-limit-enabled': false, 'start-added-torrents': true,
    'blocklist-enabled': false, 'message-level': 2,
    ...extra
  }, null, 2))
  const daemon = foreign.spawn(DAEMON, ['-f', '-g', configDir])
  let session = ''
  const rpc = async <T>(method: string, args: Record<string, unknown> = {}): Promise<T> => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await fetch(`http://127.0.0.1:${rpcPort}/transmission/rpc`, {
        method: 'POST', headers: { 'x-transmission-session-id': session }, body: JSON.stringify({ method, arguments: args })
      })
      // the CSRF handshake: the first call (and any after a restart) gets 409 and the id to send
      if (res.status === 409) { session = res.headers.get('x-transmission-session-id') ?? ''; continue }
      const body = await res.json() as { result: string, arguments: T }
      if (body.result !== 'success') throw new Error(`transmission ${method}: ${body.result}`)
      return body.arguments
    }
    throw new Error(`transmission ${method}: no session id`)
  }
  await waitFor('transmission-daemon answers RPC', async () => await rpc('session-get'), 30_000)
    .catch((err) => { throw new Error(`${String(err)}\n${daemon.tail()}`) })
  const torrent = async (id: number): Promise<TorrentView> => {
    const { torrents } = await rpc<{ torrents: TorrentView[] }>('torrent-get', { ids: [id], fields: FIELDS })
    if (torrents[0] === undefined) throw new Error(`transmission has no torrent ${id}`)
    return torrents[0]
  }
  return { daemon, rpc, torrent }
}

async function addTorrent (tr: Transmission, torrent: Uint8Array, downloadDir: string): Promise<number> {
  const added = await tr.rpc<{ 'torrent-added'?: { id: number } }>('torrent-add', { metainfo: Buffer.from(torrent).toString('base64'), 'download-dir': downloadDir })
  if (added['torrent-added'] === undefined) throw new Error(`transmission did not add the torrent: ${JSON.stringify(added)}`)
  return added['torrent-added'].id
}

t.test('interop with Transmission', { skip: existsSync(DAEMON) ? false : `transmission-daemon is not installed at ${DAEMON} (apt-get install transmission-daemon): interop not tested` }, async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-transmission-')
  const { agents, startAgent } = agentFleet(t)
  const foreign = foreignProcs(t)

  await t.test('an agent downloads an image only a Transmission seeder has', async (t) => {
    const e = await fx.addImage('from-transmission', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const seedDir = await seedDirWith(fx, e, join(dir, 'tr-seed'))
    const tr = await transmission(foreign, join(dir, 'tr-1'))
    const id = await addTorrent(tr, fx.torrents.get(e.id) as Uint8Array, seedDir)
    // Transmission checks the files it is given before it seeds them and announces left=0
    await waitFor('Transmission announced as a seed', async () => (origin.tracker.torrents[e.infoHash]?.complete ?? 0) >= 1, 60_000)
      .catch(async (err) => { t.comment(JSON.stringify(await tr.torrent(id))); t.comment(tr.daemon.tail()); throw err })
    await agentFetchesFromForeign(t, { who: 'Transmission', fx, origin, e, start: startAgent, dir, site: 'site-1', dump: () => { t.comment(tr.daemon.tail()) } })
  })

  await t.test('a Transmission leecher downloads an image only an agent seeds', async (t) => {
    const e = await fx.addImage('to-transmission', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const a = await agentAsOnlySeed(fx, origin, e, startAgent, dir, 'site-2')
    const outDir = join(dir, 'tr-out')
    await mkdir(outDir, { recursive: true })
    const tr = await transmission(foreign, join(dir, 'tr-2'))
    const id = await addTorrent(tr, fx.torrents.get(e.id) as Uint8Array, outDir)
    let last: TorrentView | undefined
    const done = await waitFor('Transmission has the whole image', async () => {
      last = await tr.torrent(id)
      return last.leftUntilDone === 0 ? last : undefined
    }, 60_000).catch((err) => { t.comment(JSON.stringify(last)); t.comment(tr.daemon.tail()); t.comment(a.logs.slice(-30).join('\n')); throw err })
    // haveValid counts only bytes of pieces whose sha1 Transmission checked
    t.equal(done.haveValid, e.size, 'Transmission verified every piece')
    // stopping the torrent makes Transmission write out its cache and close the file
    await tr.rpc('torrent-stop', { ids: [id] })
    await waitFor('Transmission stopped the torrent', async () => (await tr.torrent(id)).status === STOPPED, 60_000)
    t.equal(sha512(await readFile(join(outDir, e.id))), e.sha512, 'Transmission got the endorsed bytes')
    t.ok(await agentUploaded(agents, e.id), 'an agent uploaded')
  })

  const host = nonLoopbackIpv4()
  // Loud skip: a machine with loopback alone (CI runners and this project's machines have one more)
  if (host === undefined) console.error('\n*** SKIPPING "Transmission dials an agent": this machine has no IPv4 address outside 127/8 ***\n')
  await t.test('Transmission dials an agent, offers encryption first, and downloads in plain BitTorrent', { skip: host === undefined ? 'no IPv4 address outside 127/8 for Transmission to dial' : false }, async (t) => {
    const ip = host as string
    const e = await fx.addImage('dialled-by-transmission', 3 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
    const a = await agentAsOnlySeed(fx, origin, e, startAgent, dir, 'site-3')
    // Transmission learns of the agent from a tracker the agent never talks to, so the agent
    // cannot dial first: the connection is Transmission's
    const tracker = await privateTracker(t, ip)
    const { torrentPort } = await a.get<{ torrentPort: number }>('/v1/status')
    tracker.announcePeer(torrentPort)
    const outDir = join(dir, 'tr-dial-out')
    await mkdir(outDir, { recursive: true })
    // 3 MiB at 512 KiB/s: six seconds in which both ends list the connection (two seeds hang up)
    const tr = await transmission(foreign, join(dir, 'tr-3'), ip, { 'speed-limit-down-enabled': true, 'speed-limit-down': 512 })
    const id = await addTorrent(tr, tracker.torrentFor(fx.torrents.get(e.id) as Uint8Array), outDir)
    let last: TorrentView | undefined
    let peer: TrPeer | undefined
    let incoming: SourceView | undefined
    const done = await waitFor('Transmission has the whole image', async () => {
      last = await tr.torrent(id)
      peer = last.peers.find((p) => p.port === torrentPort) ?? peer
      const seen = (await a.get<{ peers: SourceView[] }>('/v1/peers')).peers
      incoming = seen.find((p) => p.address.includes(ip) && p.type === 'tcpIncoming' && p.uploaded > 0) ?? incoming
      return last.leftUntilDone === 0 ? last : undefined
    }, 60_000).catch((err) => { t.comment(JSON.stringify(last)); t.comment(tr.daemon.tail()); t.comment(a.logs.slice(-30).join('\n')); throw err })
    t.equal(done.haveValid, e.size, 'Transmission verified every piece')
    t.ok(peer, 'Transmission listed the agent among its peers')
    t.equal(peer?.isIncoming, false, 'Transmission opened the connection')
    // Debian's default, encryption "preferred": Transmission sent an MSE handshake first, the
    // agent (no MSE) hung up, and Transmission came back with the plain one
    t.equal(peer?.isEncrypted, false, 'the connection that carried the bytes is plain BitTorrent')
    t.ok(incoming, `the agent listed an incoming connection from ${ip} that it uploaded on`)
    await tr.rpc('torrent-stop', { ids: [id] })
    await waitFor('Transmission stopped the torrent', async () => (await tr.torrent(id)).status === STOPPED, 60_000)
    t.equal(sha512(await readFile(join(outDir, e.id))), e.sha512, 'Transmission got the endorsed bytes')
  })
})
