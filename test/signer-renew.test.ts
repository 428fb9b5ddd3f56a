import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseSignedYaml, serializeDocument } from '../lib/document.js'
import { rfc3339 } from '../lib/duration.js'
import type { IndexDocument, IndexSigned, Signature } from '../lib/schema.js'
import { indexCli, serveIndex } from './index-fixture.js'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'

// sign --renew: a signed index gets a later expiry as its next version (same images, old
// signatures dropped, signed by the renewer); a co-signer completes the threshold with a plain
// sign, and a real `imgdist-index serve` takes the result as a higher version.

const DAY = 86_400_000
const dir = await mkdtemp(join(tmpdir(), 'imgdist-signer-renew-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })
const indexPath = join(dir, 'index.yaml')
const indexOf = async (path = indexPath): Promise<IndexDocument> => parseSignedYaml(await readFile(path), 1 << 23) as IndexDocument
const ms = (rfc3339: string): number => Date.parse(rfc3339)

const keyid: Record<string, string> = {}
for (const k of ['root', 'alice', 'bob', 'carol', 'dave']) keyid[k] = (await sign('keygen', '--out', k)).stdout.trim()
await sign('init-root', '--name', 'renew-test', '--root-key', 'root.pub', '--index-key', 'alice.pub', '--index-key', 'bob.pub',
  '--index-key', 'carol.pub', '--index-threshold', '2', '--out', 'root.yaml')
await sign('sign-root', '--key', 'root.key', 'root.yaml')
await writeFile(join(dir, 'img.raw'), Buffer.alloc(40_000, 3))
await sign('add', 'img.raw', '--index', 'index.yaml', '--root', 'root.yaml', '--id', 'img', '--version', '1', '--disk-format', 'raw', '--piece-length', '16384')
await sign('sign', '--index', 'index.yaml', '--key', 'alice.key', '--expires', '14d')
await sign('sign', '--index', 'index.yaml', '--key', 'bob.key')

const dataDir = join(dir, 'server')
const init = await indexCli(['init', '--data-dir', dataDir, '--root', join(dir, 'root.yaml')])
if (init.code !== 0) throw new Error(`imgdist-index init: ${init.stderr}`)
const server = await serveIndex(t, dataDir, ['--no-dht'])
const served = async (): Promise<string> => await (await fetch(`${server.url}/v1/index.yaml`)).text()

t.test('v1, signed by two of three, is published', async (t) => {
  const v = await sign('verify', '--root', 'root.yaml', 'index.yaml')
  t.equal(v.code, 0, v.stderr)
  const p = await sign('publish', '--server', server.url, '--index', 'index.yaml')
  t.equal(p.code, 0, p.stderr)
  t.equal(await served(), await readFile(indexPath, 'utf8'))
})

t.test('--renew: the next version, a new expiry, the old signatures dropped, signed by the renewer', async (t) => {
  const before = await indexOf()
  const start = Date.now()
  const r = await sign('sign', '--index', 'index.yaml', '--key', 'alice.key', '--renew', '--expires', '30d', '--root', 'root.yaml')
  const end = Date.now()
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  const [renewed, signed] = r.stdout.trim().split('\n')
  t.match(renewed, /^renewed index\.yaml: index renew-test v1 -> v2, expires \S+ \(now \+ 30d\); dropped the 2 signature\(s\) of v1: co-signers must sign v2 again \(sign without --renew\)$/)
  t.match(signed, new RegExp(`^signed index\\.yaml \\(index renew-test v2, expires \\S+\\) with ${keyid.alice?.slice(0, 12) as string}; now 1 of threshold 2 valid index signature\\(s\\), 1 more needed: `))

  const after = await indexOf()
  t.equal(after.signed.version, 2, 'version raised by one')
  t.same(after.signed.images, before.signed.images, 'the images are unchanged')
  t.same(after.signed.revoked, before.signed.revoked)
  t.ok(ms(after.signed.issued) >= Math.floor(start / 1000) * 1000 && ms(after.signed.issued) <= end, 'issued now')
  t.ok(ms(after.signed.expires) >= Math.floor(start / 1000) * 1000 + 30 * DAY && ms(after.signed.expires) <= end + 30 * DAY, 'expires now + 30d')
  t.same(after.signatures.map((s) => s.keyid), [keyid.alice], 'only the renewer\'s signature')

  const v = await sign('verify', '--root', 'root.yaml', 'index.yaml')
  t.equal(v.code, 1, 'one of a threshold of two')
  t.match(v.stderr, /THRESHOLD_NOT_MET/)
})

t.test('a co-signer signs v2 without --renew; it verifies and the real index server takes it', async (t) => {
  const r = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--root', 'root.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^signed index\.yaml \(index renew-test v2, .*now 2 of threshold 2 valid index signature\(s\), threshold met: /)
  t.equal(r.stdout.trim().split('\n').length, 1, 'a plain sign renews nothing')
  const v = await sign('verify', '--root', 'root.yaml', '--min-version', '2', 'index.yaml')
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /^OK index renew-test v2: 1 image\(s\), 0 revoked, signed by 2 of 3 index keys, threshold 2/)
  const p = await sign('publish', '--server', server.url, '--index', 'index.yaml')
  t.equal(p.code, 0, p.stderr)
  t.match(p.stdout, /published index\.yaml to .*\/v1\/index\.yaml: HTTP 200/)
  t.equal(await served(), await readFile(indexPath, 'utf8'), 'the server now serves v2')
})

t.test('without --expires the renewal keeps the previous validity period', async (t) => {
  // v2 is fresh but fully signed: with --root that is a routine renewal, not a co-signer's slip
  const r = await sign('sign', '--index', 'index.yaml', '--key', 'carol.key', '--renew', '--root', 'root.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^renewed index\.yaml: index renew-test v2 -> v3, expires \S+ \(now \+ 30d, the validity period of v2\); dropped the 2 signature\(s\) of v2/)
  t.match(r.stdout, /now 1 of threshold 2 valid index signature\(s\), 1 more needed: /)
  const after = await indexOf()
  t.equal(after.signed.version, 3)
  t.equal(ms(after.signed.expires) - ms(after.signed.issued), 30 * DAY)
  t.equal((await sign('sign', '--index', 'index.yaml', '--key', 'alice.key')).code, 0)
  t.equal((await sign('verify', '--root', 'root.yaml', 'index.yaml')).code, 0)
})

t.test('refusals: exit 2, one line, index.yaml untouched', async (t) => {
  const bytes = await readFile(indexPath)
  const outsider = await sign('sign', '--index', 'index.yaml', '--key', 'dave.key', '--renew', '--root', 'root.yaml')
  t.equal(outsider.code, 2, 'a key outside the root\'s index role, as for a plain sign')
  t.ok(isOneErrorLine(outsider.stderr), outsider.stderr)
  t.match(outsider.stderr, /KEY_INVALID: sign: key [0-9a-f]{12} is not an index key of root\.yaml v1/)
  t.same(await readFile(indexPath), bytes, 'not renewed')

  await writeFile(join(dir, 'garbage.yaml'), 'signed: {type: index\n  - ]]]\n')
  const garbage = await sign('sign', '--index', 'garbage.yaml', '--key', 'alice.key', '--renew')
  t.equal(garbage.code, 2, 'an index that does not parse')
  t.ok(isOneErrorLine(garbage.stderr), garbage.stderr)
  t.match(garbage.stderr, /YAML_INVALID: garbage\.yaml is not valid YAML/)

  // a hand-edited index that expired when it was issued: there is no period to keep
  const doc = await indexOf()
  const noPeriod = (await readFile(indexPath, 'utf8')).replace(`expires: ${doc.signed.expires}`, `expires: ${doc.signed.issued}`)
  t.not(noPeriod, bytes.toString('utf8'), 'expires was edited')
  await writeFile(join(dir, 'no-period.yaml'), noPeriod)
  const none = await sign('sign', '--index', 'no-period.yaml', '--key', 'alice.key', '--renew')
  t.equal(none.code, 2)
  t.ok(isOneErrorLine(none.stderr), none.stderr)
  t.match(none.stderr, /USAGE: sign: no-period\.yaml v3 expires \(\S+\) no later than it was issued \(\S+\), so it has no validity period to keep; give --renew --expires DURATION/)
  t.equal(await readFile(join(dir, 'no-period.yaml'), 'utf8'), noPeriod, 'not renewed')
  const given = await sign('sign', '--index', 'no-period.yaml', '--key', 'alice.key', '--renew', '--expires', '2w')
  t.equal(given.code, 0, `with --expires it renews: ${given.stderr}`)
  t.match(given.stdout, /v3 -> v4, expires \S+ \(now \+ 14d\)/)
})

// A co-signer who passes --renew too would drop the first endorser's fresh signature: --renew
// refuses an index that is signed, not expired and short of the threshold (with --root) or
// issued under 24 h ago (without).

const WAYS_ON = 'co-sign it with imgdist-sign sign \\(without --renew\\), or, if a new version really is intended, pass --renew --force'
let v4: IndexDocument | undefined

t.test('a co-signer\'s --renew of the fresh renewal is refused, with --root and without; index.yaml untouched', async (t) => {
  const first = await sign('sign', '--index', 'index.yaml', '--key', 'alice.key', '--renew', '--root', 'root.yaml')
  t.equal(first.code, 0, `v3 is fully signed, so the first endorser renews it: ${first.stderr}`)
  t.match(first.stdout, /v3 -> v4/)
  const bytes = await readFile(indexPath)
  v4 = await indexOf()

  const withRoot = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--renew', '--root', 'root.yaml')
  t.equal(withRoot.code, 2)
  t.ok(isOneErrorLine(withRoot.stderr), withRoot.stderr)
  t.match(withRoot.stderr, new RegExp('USAGE: sign: index\\.yaml v4 is partially signed: 1 of threshold 2 valid index signature\\(s\\), ' +
    `and has not expired \\(expires ${v4.signed.expires}\\): --renew would make v5 and drop its signatures; ${WAYS_ON}$`, 'm'))
  t.same(await readFile(indexPath), bytes, 'not renewed, not signed')

  const without = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--renew')
  t.equal(without.code, 2)
  t.ok(isOneErrorLine(without.stderr), without.stderr)
  t.match(without.stderr, new RegExp('USAGE: sign: index\\.yaml v4 has 1 signature\\(s\\), was issued \\S+ ago \\(less than 24h; give --root to compare them ' +
    `with the threshold\\) and has not expired \\(expires ${v4.signed.expires}\\): --renew would make v5 and drop its signatures; ${WAYS_ON}$`, 'm'))
  t.same(await readFile(indexPath), bytes, 'not renewed, not signed')

  const stray = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--force')
  t.equal(stray.code, 2, '--force overrides the renewal check only, so it means nothing without --renew')
  t.match(stray.stderr, /USAGE: sign: --force only applies to --renew/)
  t.same(await readFile(indexPath), bytes)
})

t.test('--renew --force renews the partially signed fresh index', async (t) => {
  const r = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--renew', '--force')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^renewed index\.yaml: index renew-test v4 -> v5, .*dropped the 1 signature\(s\) of v4/)
  t.match(r.stdout, /now 1 signature\(s\)/, 'without --root: the count alone')
  const after = await indexOf()
  t.equal(after.signed.version, 5)
  t.same(after.signatures.map((s) => s.keyid), [keyid.bob])
})

t.test('a signature that does not verify does not count toward the threshold', async (t) => {
  // two entries for a threshold of two, but alice's was made over v4: counting entries would renew
  const v5 = await indexOf()
  const aliceOnV4 = v4?.signatures.find((s) => s.keyid === keyid.alice) as Signature
  t.ok(aliceOnV4)
  const stale = await writeIndex('stale.yaml', { signed: v5.signed, signatures: [...v5.signatures, aliceOnV4] })
  const v = await sign('verify', '--root', 'root.yaml', 'stale.yaml')
  t.match(v.stderr, /SIGNATURE_INVALID/, 'alice\'s entry really does not verify over v5')
  const r = await sign('sign', '--index', 'stale.yaml', '--key', 'carol.key', '--renew', '--root', 'root.yaml')
  t.equal(r.code, 2)
  t.ok(isOneErrorLine(r.stderr), r.stderr)
  t.match(r.stderr, /USAGE: sign: stale\.yaml v5 is partially signed: 1 of threshold 2 valid index signature\(s\) \(1 other signature\(s\) do not count: they do not verify or are not by an index key\), and has not expired/)
  t.equal(await readFile(join(dir, 'stale.yaml'), 'utf8'), stale, 'not renewed')
})

t.test('with --root, the status line counts what the agents will: valid signatures by distinct index keys', async (t) => {
  const v5 = await indexOf()
  const aliceOnV4 = v4?.signatures.find((s) => s.keyid === keyid.alice) as Signature
  await writeIndex('count.yaml', { signed: v5.signed, signatures: [...v5.signatures, aliceOnV4] })
  const d = await sign('sign', '--index', 'count.yaml', '--key', 'dave.key')
  t.equal(d.code, 0, d.stderr)
  t.match(d.stdout, /; now 3 signature\(s\): /, 'without --root: entries, whatever they are worth')
  const r = await sign('sign', '--index', 'count.yaml', '--key', 'carol.key', '--root', 'root.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /; now 2 of threshold 2 valid index signature\(s\) \(not counted: 1 failing verification, 1 not by an index key\), threshold met: /)
  t.equal((await sign('verify', '--root', 'root.yaml', 'count.yaml')).code, 0, 'and verify agrees')
})

t.test('an expired partially signed index renews, with --root and without', async (t) => {
  const now = Date.now()
  for (const root of [['--root', 'root.yaml'], []]) {
    const name = `expired${root.length}.yaml`
    await writeSignedIndex(name, { issued: rfc3339(new Date(now - 15 * DAY)), expires: rfc3339(new Date(now - DAY)) }, ['alice'])
    const r = await sign('sign', '--index', name, '--key', 'bob.key', '--renew', ...root)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, new RegExp(`^renewed ${name.replace('.', '\\.')}: index renew-test v5 -> v6, expires \\S+ \\(now \\+ 14d, the validity period of v5\\); dropped the 1 signature\\(s\\) of v5`))
  }
})

t.test('without --root, a partially signed index issued 24 h ago or more renews; --root still refuses it', async (t) => {
  const now = Date.now()
  const bytes = await writeSignedIndex('older.yaml', { issued: rfc3339(new Date(now - 2 * DAY)), expires: rfc3339(new Date(now + 12 * DAY)) }, ['alice'])
  const withRoot = await sign('sign', '--index', 'older.yaml', '--key', 'bob.key', '--renew', '--root', 'root.yaml')
  t.equal(withRoot.code, 2, 'the threshold is known: one of two is partial, however old')
  t.match(withRoot.stderr, /USAGE: sign: older\.yaml v5 is partially signed: 1 of threshold 2/)
  t.equal(await readFile(join(dir, 'older.yaml'), 'utf8'), bytes)
  const r = await sign('sign', '--index', 'older.yaml', '--key', 'bob.key', '--renew')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^renewed older\.yaml: index renew-test v5 -> v6, expires \S+ \(now \+ 14d, the validity period of v5\)/)
})

async function writeIndex (name: string, doc: IndexDocument): Promise<string> {
  const text = serializeDocument(doc)
  await writeFile(join(dir, name), text)
  return text
}

/** index.yaml's content with other dates, as if issued earlier, then signed by `signers`. */
async function writeSignedIndex (name: string, dates: Pick<IndexSigned, 'issued' | 'expires'>, signers: string[]): Promise<string> {
  await writeIndex(name, { signed: { ...(await indexOf()).signed, ...dates }, signatures: [] })
  for (const k of signers) {
    const r = await sign('sign', '--index', name, '--key', `${k}.key`)
    if (r.code !== 0) throw new Error(`sign ${name}: ${r.stderr}`)
  }
  return await readFile(join(dir, name), 'utf8')
}
