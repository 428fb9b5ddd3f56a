import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { engineFixture } from './helpers/engine-fixture.js'
import { sleep } from './helpers/raw-peer.js'

// A web seed (BEP 19) is usually the origin, whose upload is the scarce thing: a piece it is
// still sending when peers complete that piece is cut off, not sent to the end for nothing.

const KiB = 1024

interface Served { range: string, sent: number, finished: boolean, closed: Promise<void> }

/** A web seed that sends each range 4 KiB at a time every 50 ms (64 KiB in about 0.8 s). */
async function slowWebSeed (t: { teardown: (fn: () => Promise<void>) => void }, data: Buffer): Promise<{ url: string, served: Served[] }> {
  const served: Served[] = []
  const server = createServer((req, res: ServerResponse) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (m === null) { res.writeHead(416).end(); return }
    const [from, to] = [Number(m[1]), Number(m[2]) + 1]
    res.writeHead(206, { 'content-length': to - from, 'content-range': `bytes ${from}-${to - 1}/${data.length}` })
    let closedFn = (): void => {}
    const s: Served = { range: `${from}-${to}`, sent: 0, finished: false, closed: new Promise((resolve) => { closedFn = resolve }) }
    served.push(s)
    let at = from
    const timer = setInterval(() => {
      const n = Math.min(4 * KiB, to - at)
      res.write(data.subarray(at, at + n))
      at += n; s.sent += n
      if (at === to) { clearInterval(timer); s.finished = true; res.end() }
    }, 50)
    res.on('close', () => { clearInterval(timer); closedFn() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/img.raw`, served }
}

t.test('a web seed\'s piece that peers complete first is cut off, and the seed is not blamed', async (t) => {
  const pieces = 32
  const { Swarm, src, tor, log, opts, seedFile } = await engineFixture(t, pieces * 64 * KiB)
  const ws = await slowWebSeed(t, await readFile(src))
  const leecher = new Swarm(opts('leech'), log)
  const seeder = new Swarm(opts('seed'), log)
  t.teardown(async () => { await leecher.close(); await seeder.close() })
  await seedFile(seeder)
  // No peer yet: the web seed is asked for pieces no peer has.
  const l = leecher.add(tor.infoHash, tor.bytes, [ws.url])
  const deadline = Date.now() + 20_000
  while (ws.served.length === 0 && Date.now() < deadline) await sleep(20)
  t.ok(ws.served.length > 0, 'the web seed was asked for pieces')
  // Then a seed: it has every piece, and the ones the web seed is still sending too (endgame).
  leecher.addPeer(tor.infoHash, `127.0.0.1:${await seeder.listening()}`)
  await l.done
  const seed = l.webSeeds[0]
  if (seed === undefined) throw new Error('no web seed on the handle')
  // Every range either finished before the peers had it or was cut off: wait for the close.
  await Promise.race([Promise.all(ws.served.map(async (s) => await s.closed)), sleep(10_000)])
  const cut = ws.served.filter((s) => !s.finished)
  t.ok(cut.length > 0, `a piece in flight from the web seed was cut off (${ws.served.map((s) => `${s.range}: ${s.sent}${s.finished ? '' : ' cut'}`).join(', ')})`)
  t.equal(seed.cutOff, cut.length, 'each counted as cut off')
  for (const s of cut) t.ok(s.sent < 64 * KiB, `range ${s.range}: ${s.sent} of ${64 * KiB} bytes sent`)
  t.equal(seed.failures, 0, 'not counted as the web seed\'s failure')
  t.notOk(seed.banned, 'nor banned')
  t.same(await readFile(`${leecher.downloadDir(tor.infoHash)}/img.raw`), await readFile(src), 'the download is whole')
})
