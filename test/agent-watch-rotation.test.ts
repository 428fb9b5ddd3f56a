import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { buildRoot, editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { encodePublicKey, generateKeyPair, type KeyPair } from '../lib/keys.js'
import { startIndexServer } from './helpers/agent-index-server.js'
import { agentFleet, waitFor } from './helpers/agent-proc.js'
import { putIndex } from './index-fixture.js'

/**
 * A key rotation published while an agent watches (README, "rotate root keys"; docs/agent.md,
 * "Watch"): the endorsers PUT root v2 with new index keys, then the first index those keys sign.
 * The agent's held GET is answered with that index, which its root from before the hold cannot
 * verify. It must take the new root and the index at once, not refuse the index as
 * THRESHOLD_NOT_MET and count a failed poll until its backoff runs out. The real index server
 * and the built agent.
 */

interface CatalogueStatus { rootVersion: number, indexVersion: number, watching: boolean, pollErrors: number, error?: { code: string, message: string } }

t.test('an index signed by keys of a root published during the held GET is accepted at once', async (t) => {
  const srv = await startIndexServer(t, { uploadLimit: -1 })
  const v1 = await srv.publish((i) => editIndex(i, new Date(), (s) => s))
  const { startAgent } = agentFleet(t)
  const a = await startAgent(join(srv.dir, 'site'), 'site-r', {
    subscriptions: [{ url: srv.indexUrl, root: srv.fx.rootPath, pollInterval: '5m' }]
  })
  const catalogue = async (): Promise<CatalogueStatus> =>
    (await a.get<{ catalogues: CatalogueStatus[] }>('/v1/status')).catalogues[0] as CatalogueStatus
  const watchers = async (): Promise<number> =>
    Number(/^imgdist_index_watchers (\d+)$/m.exec(await (await fetch(`${srv.url}/metrics`)).text())?.[1] ?? NaN)
  await waitFor('the agent to hold a GET of index v1', async () =>
    (await catalogue()).indexVersion === v1.signed.version && await watchers() === 1)

  // root v2: a new root key in place of the old one, and a new index key in place of the old ones
  const newRootKey = generateKeyPair()
  const newIndexKey = generateKeyPair()
  const v2 = buildRoot({
    name: srv.fx.root.signed.name, version: 2, expires: new Date(Date.now() + 86400_000),
    rootKeys: [encodePublicKey(newRootKey.publicKey)], rootThreshold: 1,
    indexKeys: [encodePublicKey(newIndexKey.publicKey)], indexThreshold: 1
  })
  const rotated = serializeDocument(addSignature(addSignature(v2, srv.fx.rootKeys[0] as KeyPair), newRootKey))
  const put = await fetch(`${srv.url}/v1/root.yaml`, { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: rotated })
  t.equal(put.status, 200, 'the server takes root v2')
  t.equal(await watchers(), 1, 'a root publish leaves the agent\'s GET held')

  const idx2 = await srv.fx.publish((i) => editIndex(i, new Date(), (s) => s), [newIndexKey])
  const res = await putIndex(srv.url, await readFile(srv.fx.indexPath))
  t.equal(res.status, 200, 'the server takes the index signed by the new key')

  // well within the 4 s backoff after a failed poll: the held GET itself must carry it
  const took = await waitFor('the agent to accept the new index', async () => {
    const c = await catalogue()
    return c.indexVersion === idx2.signed.version || c.error !== undefined ? c : undefined
  }, 3000).catch(async () => await catalogue())
  t.equal(took.error, undefined, `no refusal on the way: ${JSON.stringify(took.error)}`)
  t.equal(took.indexVersion, idx2.signed.version, 'the new index is in force')
  t.equal(took.rootVersion, 2, 'under root v2')
  t.equal(took.pollErrors, 0, 'and no poll counted as failed')
  t.notOk(a.logs.some((l) => l.includes('THRESHOLD_NOT_MET')), 'nothing logged a refusal')
  t.ok(a.logs.some((l) => l.includes('"root rotated"')), 'the rotation is logged')
  await a.stop('SIGTERM')
})
