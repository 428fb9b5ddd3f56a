import t from 'tap'
import { buildRoot } from '../lib/catalogue-edit.js'
import { addSignature, contentDigest, parseSignedYaml, serializeDocument, MAX_INDEX_BYTES } from '../lib/document.js'
import { TrustError } from '../lib/errors.js'
import { encodePublicKey, generateKeyPair } from '../lib/keys.js'
import type { SignedDocument } from '../lib/schema.js'
import { acceptIndex, assertNotExpired, catalogueExpires, imageExpired, verifyRootSuccessor, verifySelfSignedRoot, walkRootChain } from '../lib/trust.js'
import { DAY, entry, NOW, trustSet } from './helpers/trust-fixture.js'

const ts = trustSet()
const root = ts.root.signed

/** Serialises, re-parses (the path every real document takes) and accepts, returning the error code. */
function codeOf (fn: () => unknown): string {
  try { fn(); return 'ACCEPTED' } catch (err) {
    if (err instanceof TrustError) return err.code
    throw err
  }
}
const viaYaml = (doc: SignedDocument<unknown>): SignedDocument<unknown> => parseSignedYaml(serializeDocument(doc), MAX_INDEX_BYTES)
const accept = (doc: SignedDocument<unknown>, last?: { version: number, digest: string }, now = NOW): string =>
  codeOf(() => acceptIndex(root, viaYaml(doc), { now, last }))

/** Signs edited content again with a threshold of index keys, so only the edit can be refused. */
const resign = (doc: SignedDocument<any>): SignedDocument<any> =>
  ts.indexKeys.slice(0, 2).reduce((d, k) => addSignature(d, k), { signed: doc.signed, signatures: [] } as SignedDocument<any>)

t.test('a well-formed index signed by a threshold of distinct index keys is accepted', async (t) => {
  const doc = ts.index(3)
  const res = acceptIndex(root, viaYaml(doc), { now: NOW })
  t.equal(res.doc.signed.version, 3)
  t.equal(res.signers.length, 2)
  t.equal(res.digest, contentDigest(doc.signed))
})

t.test('co-signing: a second signer adds, never invalidates', async (t) => {
  const one = ts.index(4, undefined, [ts.indexKeys[0]!])
  t.equal(accept(one), 'THRESHOLD_NOT_MET')
  const two = addSignature(one, ts.indexKeys[1]!)
  t.equal(two.signatures.length, 2)
  t.equal(accept(two), 'ACCEPTED')
  const again = addSignature(two, ts.indexKeys[1]!)
  t.equal(again.signatures.length, 2, 're-signing with the same key replaces, not duplicates')
})

t.test('adversarial documents are each rejected with their code', async (t) => {
  const good = ts.index(5)
  const stranger = generateKeyPair()
  const forged = structuredClone(good)
  forged.signed.images[0]!.size = 999 // content changed after signing
  const sameKeyTwice = ts.index(5, undefined, [ts.indexKeys[0]!])
  sameKeyTwice.signatures.push({ ...sameKeyTwice.signatures[0]! })
  const byStranger = ts.index(5, undefined, [ts.indexKeys[0]!, stranger])
  const expiredIndex = ts.index(5, undefined, undefined, -1)
  const dupIds = ts.index(5, [entry('a'), entry('b')])
  dupIds.signed.images[1]!.id = 'a'
  const traversal = structuredClone(good) as SignedDocument<any>
  traversal.signed.images[0].id = '../../etc'
  const slashName = structuredClone(good) as SignedDocument<any>
  slashName.signed.images[0].name = 'x/y'
  const nulName = structuredClone(good) as SignedDocument<any>
  nulName.signed.images[0].name = 'a\u0000b'
  const dotName = structuredClone(good) as SignedDocument<any>
  dotName.signed.images[0].version = '.hidden'
  const wrongType = structuredClone(good) as SignedDocument<any>
  wrongType.signed.type = 'targets'
  const missing = structuredClone(good) as SignedDocument<any>
  delete missing.signed.images[0].sha512
  const nonHex = structuredClone(good) as SignedDocument<any>
  nonHex.signed.images[0].infoHash = 'z'.repeat(40)
  const extraField = structuredClone(good) as SignedDocument<any>
  extraField.signed.surprise = true
  const otherCatalogue = structuredClone(good) as SignedDocument<any>
  otherCatalogue.signed.name = 'cms'
  const unsigned = { signed: good.signed, signatures: [] }

  const cases: Array<[string, SignedDocument<unknown>, string]> = [
    ['forged (content changed after signing)', forged, 'SIGNATURE_INVALID'],
    ['signature by a key not in the root', byStranger, 'THRESHOLD_NOT_MET'],
    ['the same key counted twice', sameKeyTwice, 'THRESHOLD_NOT_MET'],
    ['no signatures', unsigned, 'SIGNATURE_MISSING'],
    ['expired index', expiredIndex, 'EXPIRED'],
    ['duplicate ids', dupIds, 'DUPLICATE_ID'],
    ['id: ../../etc', traversal, 'UNSAFE_NAME'],
    ['name with a slash', slashName, 'UNSAFE_NAME'],
    ['name with NUL', nulName, 'UNSAFE_NAME'],
    ['version with a leading dot', dotName, 'UNSAFE_NAME'],
    ['wrong type', wrongType, 'TYPE_UNKNOWN'],
    ['missing field', missing, 'SCHEMA_INVALID'],
    ['non-hex info hash', nonHex, 'SCHEMA_INVALID'],
    ['unknown field', extraField, 'SCHEMA_INVALID'],
    ['another catalogue', otherCatalogue, 'NAME_MISMATCH']
  ]
  for (const [what, doc, code] of cases) t.equal(accept(doc), code, what)
})

t.test('an id is listed or revoked, once', async (t) => {
  const both = ts.index(5, [entry('a'), entry('b')])
  both.signed.revoked = [{ id: 'b', reason: 'bad', at: '2026-05-01T00:00:00Z' }]
  t.throws(() => acceptIndex(root, viaYaml(resign(both)), { now: NOW }), { code: 'DUPLICATE_ID', message: /revoked\[0\]\.id "b" is also listed as images\[1\]/ }, 'listed and revoked')
  const twice = ts.index(5, [entry('a')])
  twice.signed.revoked = [{ id: 'c', reason: 'one', at: '2026-05-01T00:00:00Z' }, { id: 'c', reason: 'two', at: '2026-05-02T00:00:00Z' }]
  t.throws(() => acceptIndex(root, viaYaml(resign(twice)), { now: NOW }), { code: 'DUPLICATE_ID', message: /revoked\[1\]\.id "c" appears more than once/ }, 'revoked twice')
  const fine = ts.index(5, [entry('a')])
  fine.signed.revoked = [{ id: 'c', reason: 'one', at: '2026-05-01T00:00:00Z' }]
  t.equal(accept(resign(fine)), 'ACCEPTED', 'one revocation of an unlisted id')
})

t.test('signed timestamps must be real dates: a rolled-over or NaN expiry never passes', async (t) => {
  const cases: Array<[string, (s: any) => void, RegExp]> = [
    ['index expires in month 13 (Date.parse gives NaN: never expired)', (s) => { s.expires = '2026-13-45T00:00:00Z' }, /^index expires "2026-13-45T00:00:00Z" is not a real date/],
    ['index issued on February 30', (s) => { s.issued = '2026-02-30T00:00:00Z' }, /^index issued /],
    ['image expires at hour 25', (s) => { s.images[0].expires = '2027-01-01T25:00:00Z' }, /images\[0\]\.expires/],
    ['revoked at on April 31', (s) => { s.revoked = [{ id: 'z', reason: 'r', at: '2026-04-31T00:00:00Z' }] }, /revoked\[0\]\.at/]
  ]
  for (const [what, edit, message] of cases) {
    const doc = structuredClone(ts.index(6)) as SignedDocument<any>
    edit(doc.signed)
    t.throws(() => acceptIndex(root, viaYaml(resign(doc)), { now: NOW }), { code: 'SCHEMA_INVALID', message }, what)
  }
  const badRoot = structuredClone(ts.root) as SignedDocument<any>
  badRoot.signed.expires = '2027-02-29T00:00:00Z'
  t.throws(() => verifySelfSignedRoot(viaYaml(ts.rootKeys.reduce((d, k) => addSignature(d, k), { signed: badRoot.signed, signatures: [] } as SignedDocument<any>)), NOW),
    { code: 'SCHEMA_INVALID', message: /root expires "2027-02-29T00:00:00Z" is not a real date/ })
  t.throws(() => assertNotExpired({ expires: '2026-13-45T00:00:00Z' }, NOW, 'x'), { code: 'EXPIRED' }, 'an unreadable expiry is expired, not eternal')
  t.ok(imageExpired({ expires: '2099-13-01T00:00:00Z' }, NOW), 'an image with an unreadable expiry is expired')
  t.notOk(imageExpired({ expires: '2099-12-01T00:00:00Z' }, NOW))
})

t.test('a catalogue is in force until the earlier of its root\'s and its index\'s expires', async (t) => {
  t.equal(catalogueExpires('2027-01-01T00:00:00Z', '2026-12-05T10:00:00Z'), '2026-12-05T10:00:00Z', 'the index\'s')
  t.equal(catalogueExpires('2026-12-01T00:00:00Z', '2026-12-05T10:00:00Z'), '2026-12-01T00:00:00Z', 'the root\'s')
  t.equal(catalogueExpires('2027-01-01T00:00:00Z', '2026-12-05T11:00:00+01:00'), '2026-12-05T10:00:00Z', 'as UTC')
  t.equal(catalogueExpires('2027-01-01T00:00:00Z', '2026-12-05T10:00:00.250Z'), '2026-12-05T10:00:00.250Z', 'milliseconds kept, not rounded down')
  t.equal(catalogueExpires('2027-01-01T00:00:00Z', '2026-02-30T00:00:00Z'), '1970-01-01T00:00:00Z', 'an unreadable date counts as long past')
})

t.test('bytes that are not UTF-8 are refused, never rewritten to U+FFFD', async (t) => {
  const text = serializeDocument(ts.index(10, [entry('a', { name: 'NAME' })]))
  const at = text.indexOf('NAME')
  const bytes = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xff, 0xfe]), Buffer.from(text.slice(at + 4))])
  t.throws(() => parseSignedYaml(bytes, MAX_INDEX_BYTES, 'index.yaml'), { code: 'YAML_INVALID', message: 'index.yaml is not UTF-8' })
  t.equal(parseSignedYaml(Buffer.from(text.replace('NAME', 'Névé')), MAX_INDEX_BYTES).signatures.length, 2, 'real UTF-8 is fine')
})

t.test('rollback: older version, or same version with other content', async (t) => {
  const v7 = ts.index(7)
  const last = { version: 7, digest: contentDigest(v7.signed) }
  t.equal(accept(ts.index(6), last), 'ROLLBACK', 'older version')
  t.equal(accept(ts.index(7, [entry('other')]), last), 'ROLLBACK', 'same version, other content')
  t.equal(accept(v7, last), 'ACCEPTED', 'same version, same content is a no-op re-accept')
  t.equal(accept(ts.index(8), last), 'ACCEPTED')
  t.equal(codeOf(() => acceptIndex(root, viaYaml(ts.index(3)), { now: NOW, minVersion: 4 })), 'ROLLBACK', '--min-version')
})

t.test('an expired trusted root makes every index check fail', async (t) => {
  const short = trustSet({ rootExpiresDays: 1 })
  const later = new Date(NOW.getTime() + 2 * DAY)
  t.equal(codeOf(() => acceptIndex(short.root.signed, viaYaml(short.index(1, undefined, undefined, 30)), { now: later })), 'EXPIRED')
})

t.test('bounds: size, aliases, tags, duplicate keys, garbage', async (t) => {
  const parse = (text: string, max = MAX_INDEX_BYTES): string => codeOf(() => parseSignedYaml(text, max))
  t.equal(parse('x'.repeat(100 * 1024 * 1024)), 'TOO_LARGE', '100 MB document')
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
  for (let i = 1; i < 10; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`)
  t.equal(parse(`signed:\n  ${bomb.join('\n  ')}\nsignatures: []\n`), 'ALIAS_LIMIT', 'billion laughs')
  t.equal(parse('signed: !!binary aGVsbG8=\nsignatures: []\n'), 'YAML_INVALID', 'explicit tag')
  t.equal(parse('signed: !custom {}\nsignatures: []\n'), 'YAML_INVALID', 'custom tag')
  t.equal(parse('signed: {}\nsigned: {}\nsignatures: []\n'), 'YAML_INVALID', 'duplicate keys')
  t.equal(parse('signed: [unclosed\n'), 'YAML_INVALID', 'garbage')
  t.equal(parse('just a string'), 'SCHEMA_INVALID', 'not an envelope')
  t.equal(parse('signed: {}\nsignatures: [{keyid: nope, sig: nope}]\n'), 'SCHEMA_INVALID', 'malformed signature entry')
})

t.test('errors name the field', async (t) => {
  const bad = structuredClone(ts.index(9)) as SignedDocument<any>
  bad.signed.images[0].sha512 = 'XYZ'
  try { acceptIndex(root, viaYaml(bad), { now: NOW }); t.fail('accepted') } catch (err) {
    t.match((err as Error).message, /images\[0\]\.sha512/)
  }
})

t.test('root rotation needs a threshold of the old root keys AND of the new', async (t) => {
  const newRootKey = generateKeyPair()
  const v2 = buildRoot({
    name: 'atlas', version: 2, expires: new Date(NOW.getTime() + 365 * DAY),
    rootKeys: [encodePublicKey(newRootKey.publicKey)], rootThreshold: 1,
    indexKeys: ts.indexKeys.map((k) => encodePublicKey(k.publicKey)), indexThreshold: 2
  })
  const onlyNew = addSignature(v2, newRootKey)
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(onlyNew), NOW)), 'THRESHOLD_NOT_MET', 'signed only by the new keys')
  const onlyOld = addSignature(v2, ts.rootKeys[0]!)
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(onlyOld), NOW)), 'THRESHOLD_NOT_MET', 'signed only by the old keys')
  const both = addSignature(onlyNew, ts.rootKeys[0]!)
  t.equal(verifyRootSuccessor(root, viaYaml(both), NOW).signed.version, 2)
  const v3 = addSignature(addSignature(buildRoot({
    name: 'atlas', version: 3, expires: new Date(NOW.getTime() + 365 * DAY),
    rootKeys: [encodePublicKey(newRootKey.publicKey)], rootThreshold: 1,
    indexKeys: [encodePublicKey(newRootKey.publicKey)], indexThreshold: 1
  }), newRootKey), newRootKey)
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(v3), NOW)), 'VERSION_GAP', 'skipping a version')
  t.equal(walkRootChain(ts.root, [viaYaml(both), viaYaml(v3)], NOW).signed.version, 3, 'walks the chain forward')
  t.equal(codeOf(() => walkRootChain(ts.root, [viaYaml(v3)], NOW)), 'VERSION_GAP')
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(ts.root), NOW)), 'VERSION_NOT_RAISED', 'the trusted root again: a no-op, not an attack')
  const otherV1 = addSignature(buildRoot({
    name: 'atlas', version: 1, expires: new Date(NOW.getTime() + 365 * DAY),
    rootKeys: [encodePublicKey(newRootKey.publicKey)], rootThreshold: 1,
    indexKeys: [encodePublicKey(newRootKey.publicKey)], indexThreshold: 1
  }), ts.rootKeys[0]!)
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(otherV1), NOW)), 'ROLLBACK', 'another root under the trusted version')
  t.equal(codeOf(() => verifyRootSuccessor(root, viaYaml(ts.index(1)), NOW)), 'TYPE_UNKNOWN', 'an index is not a root')
})

t.test('expired root and self-signature of a first root', async (t) => {
  t.equal(verifySelfSignedRoot(viaYaml(ts.root), NOW).signed.version, 1)
  t.equal(codeOf(() => verifySelfSignedRoot(viaYaml(ts.root), new Date(NOW.getTime() + 400 * DAY))), 'EXPIRED')
  const unsigned = { signed: ts.root.signed, signatures: [] }
  t.equal(codeOf(() => verifySelfSignedRoot(viaYaml(unsigned), NOW)), 'SIGNATURE_MISSING')
  const badRole = structuredClone(ts.root) as SignedDocument<any>
  badRole.signed.roles.index.threshold = 9
  t.equal(codeOf(() => verifySelfSignedRoot(viaYaml(badRole), NOW)), 'SCHEMA_INVALID', 'threshold above key count')
  const lyingKeyId = structuredClone(ts.root) as SignedDocument<any>
  const [id, pub] = Object.entries(lyingKeyId.signed.keys)[0] as [string, string]
  delete lyingKeyId.signed.keys[id]
  lyingKeyId.signed.keys['0'.repeat(64)] = pub
  t.equal(codeOf(() => verifySelfSignedRoot(viaYaml(lyingKeyId), NOW)), 'SCHEMA_INVALID', 'key id not the hash of its key')
})

t.test('verifyBytes: tweetnacl signatures verify with OpenSSL; anything altered or malformed does not', async (t) => {
  const { generateKeyPair, signBytes, verifyBytes } = await import('../lib/keys.js')
  const kp = generateKeyPair()
  const other = generateKeyPair()
  const msg = Buffer.from('{"signed":{"version":1}}')
  const sig = signBytes(msg, kp.secretKey)
  t.ok(verifyBytes(msg, sig, kp.publicKey), 'a good signature verifies')
  t.notOk(verifyBytes(Buffer.from('{"signed":{"version":2}}'), sig, kp.publicKey), 'another message')
  t.notOk(verifyBytes(msg, sig, other.publicKey), 'another key')
  const raw = Buffer.from(sig, 'base64'); raw[10] = (raw[10] as number) ^ 1
  t.notOk(verifyBytes(msg, raw.toString('base64'), kp.publicKey), 'a flipped bit')
  t.notOk(verifyBytes(msg, sig.slice(0, 40), kp.publicKey), 'a short signature')
  t.notOk(verifyBytes(msg, 'not base64!', kp.publicKey), 'not base64')
  t.notOk(verifyBytes(msg, sig, kp.publicKey.subarray(0, 31)), 'a short key')
  t.notOk(verifyBytes(msg, sig, new Uint8Array(32).fill(0xff)), 'a key that is no curve point')
})
