import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { openDb } from '../agent/db.js'
import { makeDispatcher, retryAfterSeconds } from '../agent/http-fetch.js'
import type { Catalogue } from '../agent/catalogue.js'
import { CataloguePoller } from '../agent/poller.js'
import { TrustStore } from '../agent/trust-store.js'
import { buildServer } from '../index-server/server.js'
import { editIndex } from '../lib/catalogue-edit.js'
import { MAX_WAIT_SECONDS, preferredWait } from '../lib/held-get.js'
import type { Fixture } from './helpers/catalogue-fixture.js'
import { indexBytes, makeServerDir, putIndex, waitFor } from './index-fixture.js'

/**
 * Held GETs of index.yaml (lib/held-get.ts): the index server answers an agent that has the
 * current index when the next one is published, and the agent watches servers that hold and
 * falls back to its poll interval with servers that answer at once.
 */

const log = pino({ level: 'silent' })

async function listen (t: Test, opts: { maxWatchers?: number, connectionTimeoutMs?: number } = {}): Promise<{ url: string, fx: Fixture, dir: string, close: () => Promise<void> }> {
  const { dataDir, fx, dir } = await makeServerDir(t)
  await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  const app = await buildServer({ dataDir, ...opts })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return { url, fx, dir, close: async () => { await app.close() } }
}

async function publish (url: string, fx: Fixture): Promise<void> {
  const res = await putIndex(url, await indexBytes(fx))
  if (res.status !== 200) throw new Error(`PUT index: ${res.status} ${await res.text()}`)
}

async function watchers (url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/^imgdist_index_watchers (\d+)$/m.exec(text)?.[1] ?? NaN)
}

/** Waits until the server holds exactly `n` GETs (its imgdist_index_watchers gauge). */
async function untilHeld (url: string, n: number, what: string): Promise<void> {
  await waitFor(what, async () => await watchers(url) === n ? true : undefined)
}

t.test('Prefer header parsing', async (t) => {
  t.equal(preferredWait(undefined), undefined)
  t.equal(preferredWait('wait=10'), 10)
  t.equal(preferredWait('respond-async, Wait = "7"'), 7)
  t.equal(preferredWait(['return=minimal', 'wait=3; x=y']), 3)
  t.equal(preferredWait('wait=-1'), undefined)
  t.equal(preferredWait('wait=abc'), undefined)
  t.equal(preferredWait('waiting=5'), undefined)
})

t.test('Retry-After parsing', async (t) => {
  const now = Date.parse('2026-11-21T12:00:00Z')
  t.equal(retryAfterSeconds('1', now), 1)
  t.equal(retryAfterSeconds(' 120 ', now), 120)
  t.equal(retryAfterSeconds('0', now), 1, 'at least 1 s: no tight loop')
  t.equal(retryAfterSeconds('86400', now), 300, 'at most 5 minutes')
  t.equal(retryAfterSeconds('Sat, 21 Nov 2026 12:00:30 GMT', now), 30, 'an HTTP date')
  t.equal(retryAfterSeconds('soon', now), undefined)
  t.equal(retryAfterSeconds(undefined, now), undefined)
})

t.test('index server: a held GET ends with the next publish, at its wait, or at close', async (t) => {
  const { url, fx, close } = await listen(t)
  await publish(url, fx)
  const first = await fetch(`${url}/v1/index.yaml`)
  const etag = first.headers.get('etag') as string
  t.ok(etag, 'served with an ETag')
  t.equal(first.headers.get('preference-applied'), null, 'an unconditional GET is answered at once')

  // held until a publish: the new index arrives on the held request itself
  const held = fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag, prefer: 'wait=999' } })
  await untilHeld(url, 1, 'the GET to be held')
  const v2 = await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  await publish(url, fx)
  const res = await held
  t.equal(res.status, 200)
  t.equal(res.headers.get('preference-applied'), `wait=${MAX_WAIT_SECONDS}`, 'the wait is capped')
  t.match(await res.text(), new RegExp(`version: ${v2.signed.version}\\b`))
  t.not(res.headers.get('etag'), etag)
  t.equal(await watchers(url), 0)

  // a stale ETag is answered at once, whatever the wait
  const stale = await fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag, prefer: 'wait=30' } })
  t.equal(stale.status, 200)
  t.equal(stale.headers.get('preference-applied'), null)
  const etag2 = stale.headers.get('etag') as string

  // nothing published: 304 when the wait runs out
  const timedOut = await fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag2, prefer: 'wait=1' } })
  t.equal(timedOut.status, 304)
  t.equal(timedOut.headers.get('preference-applied'), 'wait=1')

  // a client that hangs up is forgotten
  const ac = new AbortController()
  const gone = fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag2, prefer: 'wait=30' }, signal: ac.signal }).catch((err: Error) => err)
  await untilHeld(url, 1, 'the GET to be held')
  ac.abort()
  t.type(await gone, Error)
  await untilHeld(url, 0, 'the held GET to be dropped')

  // close answers held GETs (a restart: poll again soon) instead of waiting out their 30 s
  const atClose = fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag2, prefer: 'wait=30' } })
  await untilHeld(url, 1, 'the GET to be held')
  await close()
  const closed = await atClose
  t.equal(closed.status, 503)
  t.equal(closed.headers.get('retry-after'), '1')
  t.match(await closed.json(), { code: 'SHUTTING_DOWN' })
})

t.test('index server: beyond maxWatchers a GET is answered at once', async (t) => {
  const { url, fx } = await listen(t, { maxWatchers: 1 })
  await publish(url, fx)
  const etag = (await fetch(`${url}/v1/index.yaml`)).headers.get('etag') as string
  const held = fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag, prefer: 'wait=30' } })
  await untilHeld(url, 1, 'the GET to be held')
  const second = await fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag, prefer: 'wait=30' } })
  t.equal(second.status, 304)
  t.equal(second.headers.get('preference-applied'), null, 'not held')
  await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  await publish(url, fx)
  t.equal((await held).status, 200)
})

t.test('index server: holds end before the idle timeout would drop the socket; the agent keeps watching', async (t) => {
  const { url, fx, dir } = await listen(t, { connectionTimeoutMs: 7000 })
  await publish(url, fx)
  const etag = (await fetch(`${url}/v1/index.yaml`)).headers.get('etag') as string
  const res = await fetch(`${url}/v1/index.yaml`, { headers: { 'if-none-match': etag, prefer: 'wait=30' } })
  t.equal(res.status, 304)
  t.equal(res.headers.get('preference-applied'), 'wait=2', '7 s idle timeout: holds of 2 s')

  // the agent asks for 50 s, is held 2 s: that still counts as held (the server said so)
  const p = await poller(t, dir, fx, `${url}/v1/index.yaml`)
  await p.start()
  await untilHeld(url, 1, 'the poller to hold a GET')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(p.status.watching, true, 'watching after the first 2 s hold ended')
  await untilHeld(url, 1, 'the poller to hold a GET again')
  t.equal(p.status.pollErrors, 0)
})

async function poller (t: Test, dir: string, fx: Fixture, url: string, logger = log): Promise<CataloguePoller> {
  const http = makeDispatcher()
  const db = await openDb(join(dir, `agent-${Math.random().toString(36).slice(2)}`))
  // an hour between polls: only a held GET can bring a new index within the test
  const p = new CataloguePoller({ url, mirrors: [], root: fx.rootPath, pollInterval: '1h', watch: true, pollIntervalMs: 3_600_000, label: 'test' },
    { log: logger, trust: new TrustStore(db.sub('trust')), http })
  t.teardown(async () => { await p.close(); await db.close(); await http.close() })
  await p.init()
  return p
}

t.test('agent poller watches the real index server and sees a publish at once', async (t) => {
  const { url, fx, dir } = await listen(t)
  await publish(url, fx)
  const p = await poller(t, dir, fx, `${url}/v1/index.yaml`)
  const seen: number[] = []
  p.on('catalogue', (c: Catalogue) => { seen.push(c.index.signed.version) })
  await p.start()
  t.same(seen, [fx.index.signed.version], 'the first round fetched the index')
  await untilHeld(url, 1, 'the poller to hold a GET')
  t.equal(p.status.watching, true, 'status shows the held GET')

  const v2 = await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  await publish(url, fx)
  await waitFor('the new index to reach the poller', () => seen.includes(v2.signed.version) ? true : undefined)
  t.equal(p.status.indexVersion, v2.signed.version)
  await untilHeld(url, 1, 'the poller to hold a GET again')
  t.equal(p.status.error, undefined)
  await p.close()
  await untilHeld(url, 0, 'close to abort the held GET')
})

t.test('agent poller does not loop on servers that answer at once', async (t) => {
  const { fx, dir } = await makeServerDir(t)
  await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  const text = await readFile(fx.indexPath)
  const etagOf = `"${createHash('sha256').update(text).digest('hex')}"`
  for (const kind of ['honours If-None-Match', 'ignores If-None-Match', 'sends no ETag'] as const) {
    let gets = 0
    const server = createServer((req, res) => {
      if (!(req.url ?? '').endsWith('/index.yaml')) { res.writeHead(404).end(); return }
      gets++
      const headers: Record<string, string> = kind === 'sends no ETag' ? {} : { etag: etagOf }
      if (kind === 'honours If-None-Match' && req.headers['if-none-match'] === etagOf) { res.writeHead(304, headers).end(); return }
      res.writeHead(200, { ...headers, 'content-type': 'application/yaml' }).end(text)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const p = await poller(t, dir, fx, `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/index.yaml`)
    await p.start()
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.equal(p.current?.index.signed.version, fx.index.signed.version, `${kind}: index accepted`)
    t.equal(p.status.watching, false, `${kind}: not watching`)
    t.ok(gets <= 2, `${kind}: ${gets} GETs in 0.5 s, then the poll interval`)
    await p.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

t.test('agent poller rides out an index server restart: no warning, watching again soon after', async (t) => {
  const { dataDir, fx, dir } = await makeServerDir(t)
  await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  let app = await buildServer({ dataDir })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  t.teardown(async () => { await app.close() })
  await publish(url, fx)
  const lines: Array<{ level: number, msg: string }> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const p = await poller(t, dir, fx, `${url}/v1/index.yaml`, logger)
  const seen: number[] = []
  p.on('catalogue', (c: Catalogue) => { seen.push(c.index.signed.version) })
  await p.start()
  await untilHeld(url, 1, 'the poller to hold a GET')

  await app.close() // the held GET gets 503 SHUTTING_DOWN, Retry-After: 1
  await waitFor('the poller to hear the server is restarting', () => lines.some((l) => /unavailable for now/.test(l.msg)) ? true : undefined)
  t.equal(p.status.pollErrors, 0, 'a 503 with Retry-After is not a failed poll')
  t.equal(p.status.watching, false)
  await new Promise((resolve) => setTimeout(resolve, 1800)) // its retry (1-1.5 s) finds the port closed
  app = await buildServer({ dataDir })
  await app.listen({ host: '127.0.0.1', port })
  await untilHeld(url, 1, 'the poller to watch the restarted server')
  const v = await fx.publish((i) => editIndex(i, new Date(), (s) => s))
  await publish(url, fx)
  await waitFor('the index published after the restart', () => seen.includes(v.signed.version) ? true : undefined)
  t.same(lines.filter((l) => l.level >= 40).map((l) => l.msg), [], 'nothing logged at warn or above')
  t.ok(lines.some((l) => /while the index server restarts/.test(l.msg)), 'the refused connection during the restart is logged at info')
  await p.close()
})
