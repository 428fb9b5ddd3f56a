import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { buildRoot, editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { encodePublicKey, generateKeyPair } from '../lib/keys.js'
import { openDb } from '../agent/db.js'
import { makeDispatcher } from '../agent/http-fetch.js'
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
