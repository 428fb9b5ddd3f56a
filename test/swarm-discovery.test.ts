import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSocket } from 'node:dgram'
import { Client as DHT } from 'bittorrent-dht'
import t from 'tap'
import { startAgent, waitFor } from './helpers/agent-proc.js'
import { makeFixture } from './helpers/catalogue-fixture.js'
import { engineFixture, privateTorrent } from './helpers/engine-fixture.js'

/**
 * Peers found without a tracker, through torrent-discovery's real implementations: the DHT
 * (BEP 5, bittorrent-dht) with real DHT nodes on loopback, and local service discovery (BEP 14,
 * bittorrent-lsd) by multicast. In each test the torrent names no tracker and no peer is handed
 * to the downloader: the discovery protocol is the only way the two engines can meet.
 */

async function listening (dht: DHT): Promise<number> {
  await new Promise<void>((resolve) => { dht.listen(0, () => { resolve() }) })
  return (dht.address() as { port: number }).port
}

t.test('a downloader finds the seed through the DHT alone and completes', async (t) => {
  const { Swarm, src, size, tor, log, opts } = await engineFixture(t, 1024 * 1024 + 4321)
  t.notOk(Buffer.from(tor.bytes).includes('announce'), 'the torrent names no tracker')
  const boot = new DHT({ bootstrap: false })
  const bootPort = await listening(boot)
  t.teardown(() => { boot.destroy() })
  const dht = { enabled: true, bootstrap: [`127.0.0.1:${bootPort}`] }

  const seed = new Swarm({ ...opts('seed'), dht }, log)
  t.teardown(async () => { await seed.close() })
  const s = seed.add(tor.infoHash, tor.bytes, [], { path: src, verified: true })
  await s.done
  const seedPort = await seed.listening()
  await waitFor('the seed DHT node to bind', async () => seed.dht?.port)
  t.equal(seed.dht?.port, seedPort, 'the DHT listens on UDP at the torrent port number by default')

  // A separate node looks the torrent up until the seed's announce_peer has landed somewhere.
  const probe = new DHT({ bootstrap: [`127.0.0.1:${bootPort}`] })
  await listening(probe)
  t.teardown(() => { probe.destroy() })
  const announced: string[] = []
  probe.on('peer', (peer: { host: string, port: number }, infoHash: Buffer) => {
    if (infoHash.toString('hex') === tor.infoHash) announced.push(`${peer.host}:${peer.port}`)
  })
  let looking = false
  await waitFor('the seed to be announced in the DHT', async () => {
    if (announced.length > 0) return true
    if (!looking) { looking = true; probe.lookup(tor.infoHash, () => { looking = false }) }
    return undefined
  })
  t.ok(announced.includes(`127.0.0.1:${seedPort}`), `the DHT lists the seed (${announced.join(', ')})`)

  const leech = new Swarm({ ...opts('leech'), dht }, log)
  t.teardown(async () => { await leech.close() })
  const l = leech.add(tor.infoHash, tor.bytes, [])
  await l.done
  t.equal(l.progress, 1)
  t.equal(l.counters.bytesFromPeers, size, 'every byte from the peer the DHT named')
  const got = await readFile(join(leech.downloadDir(tor.infoHash), 'img.raw'))
  t.ok(got.equals(await readFile(src)), 'the same bytes')
  t.ok((leech.dht?.nodes ?? 0) >= 1, `the downloader's routing table has nodes (${leech.dht?.nodes ?? 0})`)
})

t.test('a private torrent (BEP 27) is neither announced nor looked up on the DHT', async (t) => {
  const { Swarm, src, tor, log, opts } = await engineFixture(t, 256 * 1024 + 7)
  const priv = privateTorrent(tor.bytes)
  const boot = new DHT({ bootstrap: false })
  const bootPort = await listening(boot)
  t.teardown(() => { boot.destroy() })
  const dht = { enabled: true, bootstrap: [`127.0.0.1:${bootPort}`] }
  const seed = new Swarm({ ...opts('seed'), dht }, log)
  const leech = new Swarm({ ...opts('leech'), dht }, log)
  t.teardown(async () => { await seed.close(); await leech.close() })
  // the same bytes under both torrents: the public one shows the DHT works in this set-up
  await seed.add(tor.infoHash, tor.bytes, [], { path: src, verified: true }).done
  await seed.add(priv.infoHash, priv.bytes, [], { path: src, verified: true }).done
  const pub = leech.add(tor.infoHash, tor.bytes, [])
  const pr = leech.add(priv.infoHash, priv.bytes, [])
  await pub.done
  t.pass('the public torrent was found through the DHT and completed')
  await new Promise((resolve) => setTimeout(resolve, 3000)) // several catch-up rounds (500 ms each)
  const probe = new DHT({ bootstrap: [`127.0.0.1:${bootPort}`] })
  await listening(probe)
  t.teardown(() => { probe.destroy() })
  const announced: string[] = []
  probe.on('peer', (peer: { host: string, port: number }, infoHash: Buffer) => { announced.push(`${infoHash.toString('hex')} ${peer.host}:${peer.port}`) })
  await new Promise<void>((resolve) => { probe.lookup(priv.infoHash, () => { resolve() }) })
  await new Promise<void>((resolve) => { probe.lookup(tor.infoHash, () => { resolve() }) })
  t.ok(announced.some((a) => a.startsWith(tor.infoHash)), 'the DHT lists peers of the public torrent')
  t.notOk(announced.some((a) => a.startsWith(priv.infoHash)), 'and none of the private one')
  t.equal(pr.progress, 0, 'the private torrent found no peer')
  t.equal(pr.peers.size, 0)
})

t.test('the DHT can be given its own UDP port, and is absent when off', async (t) => {
  const { Swarm, log, opts } = await engineFixture(t, 64 * 1024)
  const probe = new DHT({ bootstrap: false })
  const free = await listening(probe)
  probe.destroy() // a free UDP port, for the engine to take
  await new Promise((resolve) => setTimeout(resolve, 50))
  const a = new Swarm({ ...opts('a'), dht: { enabled: true, bootstrap: [], port: free } }, log)
  const b = new Swarm(opts('b'), log)
  t.teardown(async () => { await a.close(); await b.close() })
  await a.listening()
  await waitFor('the DHT to bind', async () => a.dht?.port)
  t.equal(a.dht?.port, free)
  t.equal(b.dht, undefined)
})

t.test('a running agent joins the DHT through its bootstrap node and reports it (status, CLI, metrics)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-dht-agent-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const fx = await makeFixture(join(dir, 'catalogue'))
  const boot = new DHT({ bootstrap: false })
  const bootPort = await listening(boot)
  t.teardown(() => { boot.destroy() })
  const a = await startAgent(join(dir, 'site'), 'site-d', {
    swarm: { torrentPort: 0, dht: { enabled: true, bootstrap: [`127.0.0.1:${bootPort}`] }, lsd: false },
    subscriptions: [{ url: 'http://127.0.0.1:9/v1/index.yaml', root: fx.rootPath, pollInterval: '1h' }]
  })
  t.teardown(async () => { await a.stop('SIGKILL') })
  type Status = { torrentPort: number, dht?: { port?: number, nodes: number } }
  const status = await waitFor('the agent to join the DHT', async () => {
    const s = await a.get<Status>('/v1/status')
    return (s.dht?.nodes ?? 0) > 0 ? s : undefined
  })
  t.equal(status.dht?.port, status.torrentPort, 'UDP at the torrent port number')
  t.ok((status.dht?.nodes ?? 0) >= 1, `the bootstrap node is in its routing table (${status.dht?.nodes ?? 0})`)
  t.match(await a.cli('status'), new RegExp(`DHT \\d+ nodes \\(UDP ${status.torrentPort}\\)`), 'imgdist-agent status shows it')
  t.match(await (await fetch(`${a.api}/metrics`)).text(), /^imgdist_agent_dht_nodes [1-9]\d*$/m, 'and the metric')
})

/** Whether this host can send to the LSD multicast group (a container without a route to 239/8 cannot). */
async function multicastWorks (): Promise<string | false> {
  const sock = createSocket({ type: 'udp4', reuseAddr: true })
  try {
    await new Promise<void>((resolve, reject) => { sock.send('probe', 6771, '239.192.152.143', (err) => { if (err !== null) reject(err); else resolve() }) })
    return false
  } catch (err) {
    return `cannot send to the LSD multicast group 239.192.152.143:6771 (${(err as Error).message})`
  } finally { sock.close() }
}

const noMulticast = await multicastWorks()
if (noMulticast !== false) t.comment(`SKIPPING the LSD test: ${noMulticast}`)

t.test('a downloader finds the seed through local service discovery (multicast) alone', { skip: noMulticast }, async (t) => {
  const { Swarm, src, size, tor, log, opts } = await engineFixture(t, 256 * 1024 + 99)
  const seed = new Swarm({ ...opts('seed'), lsd: true }, log)
  const leech = new Swarm({ ...opts('leech'), lsd: true }, log)
  const other = new Swarm(opts('no-lsd'), log) // LSD off: never found
  t.teardown(async () => { await seed.close(); await leech.close(); await other.close() })
  await seed.add(tor.infoHash, tor.bytes, [], { path: src, verified: true }).done
  const o = other.add(tor.infoHash, tor.bytes, [])
  const l = leech.add(tor.infoHash, tor.bytes, [])
  await l.done
  t.equal(l.counters.bytesFromPeers, size, 'every byte from the peer LSD announced')
  t.equal(o.progress, 0, 'an engine with LSD off was not found and found nobody')
  t.equal(o.peers.size, 0)
})
