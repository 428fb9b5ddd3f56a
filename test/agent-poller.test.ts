import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { buildRoot, editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { rfc3339 } from '../lib/duration.js'
import { encodePublicKey, generateKeyPair } from '../lib/keys.js'
import { openDb } from '../agent/db.js'
import { fetchBytes, makeDispatcher } from '../agent/http-fetch.js'
import { CataloguePoller } from '../agent/poller.js'
import { TrustStore } from '../agent/trust-store.js'
import { originTestbed } from './helpers/agent-origin.js'

const log = pino({ level: 'silent' })

t.test('poller: accept, 304, durable rollback protection, root rotation, failures keep the last good', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-poller-')
  const http = makeDispatcher()
  t.teardown(async () => { await http.close() })
  const sub = { url: origin.indexUrl, mirrors: [], root: fx.rootPath, pollInterval: '1h', watch: false, pollIntervalMs: 3_600_000, label: 'test' }
  const v1 = await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  const v1Text = await readFile(fx.indexPath, 'utf8')
  const v2 = await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  t.ok(v2.signed.version > v1.signed.version)

  const open = async (): Promise<{ p: CataloguePoller, close: () => Promise<void> }> => {
    const db = await openDb(join(dir, 'agent'))
    const p = new CataloguePoller(sub, { log, trust: new TrustStore(db.sub('trust')), http })
    await p.init()
    return { p, close: async () => { await p.close(); await db.close() } }
  }
  let { p, close } = await open()
  await p.pollNow()
  t.equal(p.status.error, undefined)
  t.equal(p.current?.index.signed.version, v2.signed.version)
  await p.pollNow()
  t.equal(p.status.error, undefined, 'an unchanged index (304) is fine')

  // Replaying the older signed index is a rollback, even after a restart.
  await writeFile(fx.indexPath, v1Text)
  await p.pollNow()
  t.equal(p.status.error?.code, 'ROLLBACK')
  t.equal(p.current?.index.signed.version, v2.signed.version, 'the last good index stays')
  await close();
  ({ p, close } = await open())
  t.equal(p.current?.index.signed.version, v2.signed.version, 'the accepted index is known offline after a restart')
  await p.pollNow()
  t.equal(p.status.error?.code, 'ROLLBACK', 'a restart cannot be rolled back')

  // Key rotation: root v2 (signed by the old and the new root keys) names a new index key.
  const newRoot = generateKeyPair()
  const newIndex = generateKeyPair()
  let root2 = buildRoot({ name: fx.root.signed.name, version: 2, expires: new Date(Date.now() + 86400_000), rootKeys: [encodePublicKey(newRoot.publicKey)], rootThreshold: 1, indexKeys: [encodePublicKey(newIndex.publicKey)], indexThreshold: 1 })
  root2 = addSignature(addSignature(root2, fx.rootKeys[0] as never), newRoot)
  origin.roots.set(2, serializeDocument(root2))
  await fx.publish((i) => editIndex({ ...i, signed: { ...i.signed, version: v2.signed.version } }, new Date(), (s) => s), [newIndex])
  await p.pollNow()
  t.equal(p.status.error, undefined, `rotated: ${JSON.stringify(p.status.error)}`)
  t.equal(p.status.rootVersion, 2)
  t.equal(p.current?.index.signed.version, v2.signed.version + 1)

  // The old index key no longer counts.
  await fx.publish((i) => editIndex(i, new Date(), (s) => s), [fx.indexKeys[0] as never])
  await p.pollNow()
  t.match(p.status.error?.code, /THRESHOLD_NOT_MET|SIGNATURE/)
  t.equal(p.current?.index.signed.version, v2.signed.version + 1)

  // Unreachable: a network error, the catalogue stays.
  await origin.close()
  await p.pollNow()
  t.equal(p.status.error?.code, 'NETWORK_ERROR')
  t.ok(p.status.pollErrors >= 3)
  t.equal(p.current?.index.signed.version, v2.signed.version + 1)
  await close()
  await close()
})

const sub = (url: string, rootPath: string, over: { watch?: boolean, pollIntervalMs?: number } = {}): ConstructorParameters<typeof CataloguePoller>[0] =>
  ({ url, mirrors: [], root: rootPath, pollInterval: '1h', watch: over.watch ?? false, pollIntervalMs: over.pollIntervalMs ?? 3_600_000, label: 'test' })

t.test('poller: an index that expires while the server answers 304 goes out of force', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-poller-expiry-')
  const http = makeDispatcher()
  t.teardown(async () => { await http.close() })
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 3_600_000)) })))
  let clock = Date.now()
  const db = await openDb(join(dir, 'agent'))
  t.teardown(async () => { await db.close() })
  const p = new CataloguePoller(sub(origin.indexUrl, fx.rootPath), { log, trust: new TrustStore(db.sub('trust')), http, now: () => new Date(clock) })
  t.teardown(async () => { await p.close() })
  await p.init()
  await p.pollNow()
  t.equal(p.status.error, undefined)
  await p.pollNow()
  t.equal(p.status.error, undefined, 'unchanged (304) and current')
  t.ok(p.current !== undefined)
  clock += 2 * 3_600_000 // the server still has nothing newer: it answers 304
  await p.pollNow()
  t.equal(p.status.error?.code, 'EXPIRED', `status says so: ${JSON.stringify(p.status.error)}`)
  t.equal(p.current, undefined, 'the catalogue is no longer acted on')
  t.equal(p.status.pollErrors, 1)
  await p.pollNow()
  t.equal(p.status.error?.code, 'EXPIRED', 'and the next poll (the same index, in full) is refused as after a restart')
})

t.test('poller: once the accepted catalogue has expired a failed poll says so, not that it keeps it; status keeps the date', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-poller-lapsed-')
  const http = makeDispatcher()
  t.teardown(async () => { await http.close() })
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 3_600_000)) })))
  const expires = fx.index.signed.expires // before the root's (a year)
  let clock = Date.now()
  const lines: Array<{ msg: string, expires?: string }> = []
  const captured = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  const open = async (): Promise<{ p: CataloguePoller, close: () => Promise<void> }> => {
    const db = await openDb(join(dir, 'agent'))
    const p = new CataloguePoller(sub(origin.indexUrl, fx.rootPath), { log: captured, trust: new TrustStore(db.sub('trust')), http, now: () => new Date(clock) })
    await p.init()
    return { p, close: async () => { await p.close(); await db.close() } }
  }
  const failures = (): string[] => lines.filter((l) => l.msg.startsWith('catalogue poll failed')).map((l) => l.msg)
  const LAPSED = 'catalogue poll failed; the accepted catalogue has expired: nothing new is acted on until a current index is accepted'
  let { p, close } = await open()
  t.teardown(async () => { await close() })
  t.equal(p.status.expires, undefined, 'nothing accepted yet: no date')
  await p.pollNow()
  t.equal(p.status.expires, expires, 'the earlier of the root\'s and the index\'s expires')

  clock += 2 * 3_600_000
  await p.pollNow() // 304: the same index, now expired
  t.equal(p.current, undefined)
  t.same(failures(), [LAPSED], 'the failed poll says the catalogue is out of force')
  t.equal(lines.find((l) => l.msg === LAPSED)?.expires, expires, 'and since when')
  await p.pollNow() // in full, refused as EXPIRED
  t.same(failures(), [LAPSED, LAPSED])
  t.equal(p.status.expires, expires, 'status keeps the date it lapsed')

  // after a restart the stored catalogue is expired from the start: the same
  await close();
  ({ p, close } = await open())
  t.equal(p.current, undefined)
  t.equal(p.status.error?.code, 'EXPIRED')
  t.equal(p.status.expires, expires, 'the lapsed catalogue\'s date, after a restart')
  await p.pollNow()
  t.same(failures(), [LAPSED, LAPSED, LAPSED])

  // a renewed index puts it back in force, with its own date
  const renewed = rfc3339(new Date(clock + 86400_000))
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: renewed })))
  await p.pollNow()
  t.ok(p.current !== undefined)
  t.equal(p.status.expires, renewed)
  t.notOk(failures().some((m) => m.includes('keeping the last good')), 'never claimed to keep an expired catalogue')
})

t.test('poller: an accepted index goes out of force when it expires, without waiting for an answer', async (t) => {
  const { dir, fx, origin } = await originTestbed(t, 'imgdist-poller-expiry-timer-')
  const http = makeDispatcher()
  t.teardown(async () => { await http.close() })
  await fx.publish((i) => editIndex(i, new Date(), (s) => ({ ...s, expires: rfc3339(new Date(Date.now() + 3000)) })))
  const db = await openDb(join(dir, 'agent'))
  t.teardown(async () => { await db.close() })
  const p = new CataloguePoller(sub(origin.indexUrl, fx.rootPath), { log, trust: new TrustStore(db.sub('trust')), http })
  t.teardown(async () => { await p.close() })
  await p.init()
  await p.pollNow()
  t.ok(p.current !== undefined, 'accepted while current')
  const err = await new Promise<unknown>((resolve) => {
    const timer = setTimeout(() => { resolve('no error-status within 20 s') }, 20_000)
    p.once('error-status', (e) => { clearTimeout(timer); resolve(e) })
  })
  t.match(err, { code: 'EXPIRED' })
  t.equal(p.current, undefined)
})

t.test('fetchBytes: a body trickled byte by byte ends at the deadline as NETWORK_ERROR; the caller\'s abort is ABORTED', async (t) => {
  const open: ServerResponse[] = []
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/yaml' })
    res.write('#')
    open.push(res)
    // well inside undici's 30 s idle bodyTimeout: only an overall deadline ends this
    const timer = setInterval(() => { res.write('#') }, 200)
    res.on('close', () => { clearInterval(timer) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const r of open) r.destroy(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/index.yaml`
  const http = makeDispatcher()
  t.teardown(async () => { await http.destroy() })
  await t.rejects(fetchBytes(http, url, { maxBytes: 1 << 20, deadlineMs: 1500 }), { code: 'NETWORK_ERROR', message: /no complete answer within 2 s/ })
  const ac = new AbortController()
  setTimeout(() => { ac.abort() }, 500)
  await t.rejects(fetchBytes(http, url, { maxBytes: 1 << 20, signal: ac.signal }), { code: 'ABORTED' })
})

t.test('poller: an index server restart shows no stale error and counts no failed poll', async (t) => {
  const { dir, fx } = await originTestbed(t, 'imgdist-poller-restart-')
  await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  // A stand-in for imgdist-index's watch: a conditional GET with Prefer: wait is held until
  // the wait is over (304) or the server stops (503 + Retry-After, as imgdist-index answers).
  const held = new Set<ServerResponse>()
  let onHeld = (): void => {}
  const handler = (req: import('node:http').IncomingMessage, res: ServerResponse): void => {
    if (req.url?.startsWith('/v1/root/') === true) { res.writeHead(404).end(); return }
    void readFile(fx.indexPath).then((body) => {
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`
      if (req.headers['if-none-match'] !== etag) { res.writeHead(200, { etag }).end(body); return }
      held.add(res)
      const timer = setTimeout(() => { held.delete(res); res.writeHead(304, { etag }).end() }, 10_000)
      res.on('close', () => { clearTimeout(timer); held.delete(res) })
      onHeld()
    })
  }
  let server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const nextHeld = async (): Promise<void> => { await new Promise<void>((resolve) => { onHeld = resolve }) }
  const stop = async (planned: boolean): Promise<void> => {
    for (const res of held) if (planned) res.writeHead(503, { 'retry-after': '1' }).end(); else res.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  const restart = async (): Promise<void> => {
    server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  }
  const lines: string[] = []
  const captured = pino({ level: 'info' }, { write: (s: string) => { lines.push(s) } })
  const logged = async (what: string): Promise<void> => {
    const from = lines.length
    while (!lines.slice(from).some((l) => l.includes(what))) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const http = makeDispatcher()
  t.teardown(async () => { await http.destroy() })
  const db = await openDb(join(dir, 'agent'))
  t.teardown(async () => { await db.close() })
  const p = new CataloguePoller(sub(`http://127.0.0.1:${port}/v1/index.yaml`, fx.rootPath, { watch: true, pollIntervalMs: 10_000 }), { log: captured, trust: new TrustStore(db.sub('trust')), http })
  t.teardown(async () => { await p.close() })
  await p.init()
  let watching = nextHeld()
  await p.start()
  await watching
  t.equal(p.status.watching, true)

  // A crash (no 503; first, as a 503 opens a minute of grace): a failed poll, and its error is gone as soon as the server answers again.
  const failed = logged('catalogue poll failed; keeping')
  await stop(false)
  await failed
  t.equal(p.status.error?.code, 'NETWORK_ERROR')
  watching = nextHeld()
  await restart()
  await watching
  t.equal(p.status.error, undefined, 'the error ends when the server answers, not when the held request does')
  const crashErrors = p.status.pollErrors
  t.ok(crashErrors >= 1, 'the crash was counted')
  // A planned restart: 503 + Retry-After, then refused connections until the server is back.
  const refused = logged('while the index server restarts')
  await stop(true)
  await refused
  watching = nextHeld()
  await restart()
  await watching
  t.equal(p.status.error, undefined, `watching again, no stale error: ${JSON.stringify(p.status.error)}`)
  t.equal(p.status.pollErrors, crashErrors, 'a planned restart is not a failed poll')
})
