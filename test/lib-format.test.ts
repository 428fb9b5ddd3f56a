import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { canonicalAddr, canonicalHost, isPort, joinHostPort, parseHostPort, splitHostPort } from '../lib/host-port.js'
import { Type } from '@sinclair/typebox'
import bencode from 'bencode'
import { editIndex, emptyIndex, revokeImage, upsertImage } from '../lib/catalogue-edit.js'
import { loadConfig } from '../lib/config.js'
import { parseDuration, parseRfc3339, rfc3339, rfc3339Millis, roughSpan } from '../lib/duration.js'
import { ConfigError, ImgdistError, UsageError } from '../lib/errors.js'
import { ImageHasher } from '../lib/image-hasher.js'
import { decodePublicKey, decodeSecretKey, encodePublicKey, encodeSecretKey, generateKeyPair, keyIdOf } from '../lib/keys.js'
import { signReport, verifyReport, type ReportSigned } from '../lib/report.js'
import { buildTorrent, choosePieceLength, parseTorrent } from '../lib/torrent-meta.js'
import { entry, NOW } from './helpers/trust-fixture.js'

const code = (fn: () => unknown): string => {
  try { fn(); return 'OK' } catch (err) { if (err instanceof ImgdistError) return err.code; throw err }
}

t.test('keys: encode/decode round trip and mix-ups are named', async (t) => {
  const k = generateKeyPair()
  const pub = encodePublicKey(k.publicKey)
  t.match(pub, /^ed25519:[A-Za-z0-9+/]{43}=$/)
  t.same(decodePublicKey(pub), k.publicKey)
  t.same(decodeSecretKey(encodeSecretKey(k.secretKey)).publicKey, k.publicKey)
  t.equal(keyIdOf(k.publicKey), createHash('sha256').update(k.publicKey).digest('hex'))
  t.throws(() => decodeSecretKey(pub), /public key, expected a secret key/)
  t.throws(() => decodePublicKey(encodeSecretKey(k.secretKey)), /secret key, expected a public key/)
  t.equal(code(() => decodePublicKey('ed25519:AAAA')), 'KEY_INVALID')
})

t.test('image hasher: one pass gives sha512, size and piece hashes, whatever the chunking', async (t) => {
  const data = randomBytes(5 * 65536 + 123)
  const h = new ImageHasher(65536)
  for (let off = 0; off < data.length; off += 7777) h.update(data.subarray(off, off + 7777))
  const d = h.digest()
  t.equal(d.sha512, createHash('sha512').update(data).digest('hex'))
  t.equal(d.size, data.length)
  t.equal(d.pieces.byteLength, 6 * 20)
  t.same(Buffer.from(d.pieces.subarray(100, 120)), createHash('sha1').update(data.subarray(5 * 65536)).digest(), 'last short piece')
})

t.test('torrents: build, parse, and refuse what does not match', async (t) => {
  const data = randomBytes(3 * 16384 + 5)
  const h = new ImageHasher(16384)
  h.update(data)
  const d = h.digest()
  const built = buildTorrent({ name: 'img', length: d.size, pieceLength: 16384, pieces: d.pieces, announce: ['http://127.0.0.1:1/announce'], webSeeds: ['http://127.0.0.1:1/v1/images/img'] })
  const p = parseTorrent(built.bytes, { infoHash: built.infoHash, length: data.length })
  t.equal(p.infoHash, built.infoHash)
  t.equal(p.pieceCount, 4)
  t.same(p.announce, ['http://127.0.0.1:1/announce'])
  t.same(p.webSeeds, ['http://127.0.0.1:1/v1/images/img'])
  t.equal(code(() => parseTorrent(built.bytes, { infoHash: 'c'.repeat(40) })), 'TORRENT_INVALID', 'other info hash')
  t.equal(code(() => parseTorrent(built.bytes, { length: 1 })), 'TORRENT_INVALID', 'other length')
  t.equal(code(() => parseTorrent(new Uint8Array(5 * 1024 * 1024))), 'TORRENT_INVALID', 'too large')
  t.equal(code(() => parseTorrent(Buffer.from('garbage'))), 'TORRENT_INVALID', 'not bencode')
  const multi = bencode.encode({ info: { name: 'x', 'piece length': 16384, pieces: new Uint8Array(20), files: [{ length: 1, path: ['a'] }] } })
  t.equal(code(() => parseTorrent(multi)), 'TORRENT_INVALID', 'multi-file')
  const badPieces = bencode.encode({ info: { name: 'x', length: 40000, 'piece length': 16384, pieces: new Uint8Array(20) } })
  t.equal(code(() => parseTorrent(badPieces)), 'TORRENT_INVALID', 'wrong piece hash count')
  t.equal(choosePieceLength(50 * 2 ** 20), 2 ** 20)
  t.equal(choosePieceLength(4 * 2 ** 30), 4 * 2 ** 20)
  t.equal(choosePieceLength(2 ** 40), 16 * 2 ** 20)
})

t.test('catalogue edits bump the version and drop signatures', async (t) => {
  let idx = emptyIndex('atlas', NOW, new Date(NOW.getTime() + 1e9))
  idx = { ...idx, signatures: [{ keyid: 'a'.repeat(64), sig: 'x' }] }
  const v1 = editIndex(idx, NOW, (s) => upsertImage(s, entry('b')))
  t.equal(v1.signed.version, 1)
  t.same(v1.signatures, [])
  const v2 = editIndex(v1, NOW, (s) => upsertImage(s, entry('a')))
  t.same(v2.signed.images.map((i) => i.id), ['a', 'b'])
  const v3 = editIndex(v2, NOW, (s) => revokeImage(s, 'a', 'CVE-2026-1', NOW))
  t.same(v3.signed.images.map((i) => i.id), ['b'])
  t.same(v3.signed.revoked, [{ id: 'a', reason: 'CVE-2026-1', at: rfc3339(NOW) }])
  t.equal(code(() => revokeImage(v3.signed, 'zzz', 'r', NOW)), 'NOT_FOUND')
  const v4 = editIndex(v3, NOW, (s) => upsertImage(s, entry('a')))
  t.same(v4.signed.revoked, [], 're-adding un-revokes')
})

t.test('durations and timestamps', async (t) => {
  t.equal(parseDuration('14d'), 14 * 86400_000)
  t.equal(parseDuration('90s'), 90_000)
  t.throws(() => parseDuration('14 days'), UsageError)
  t.equal(rfc3339(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05Z')
  t.throws(() => parseRfc3339('yesterday'), UsageError)
  // the one rough span of status lines and the fleet page: one unit, rounded down, sign dropped
  t.same([0, 89_999, 90_000, 5_399_999, 5_400_000, 172_799_999, 172_800_000, 30 * 86400_000 - 1, -45_500].map(roughSpan),
    ['0s', '89s', '1m', '89m', '1h', '47h', '2d', '29d', '45s'])
})

t.test('--now and document timestamps must be real dates: no rollover, no NaN', async (t) => {
  for (const bad of ['2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:60:00Z', '2026-01-01T00:00:60Z', '2026-01-01T00:00:00+24:00']) {
    t.throws(() => parseRfc3339(bad, '--now'), { code: 'USAGE', message: /--now is not a real date/ }, bad)
    t.equal(rfc3339Millis(bad), undefined, bad)
  }
  t.equal(parseRfc3339('2024-02-29T00:00:00Z').toISOString(), '2024-02-29T00:00:00.000Z', 'leap day')
  t.equal(parseRfc3339('2026-01-01T01:30:00+01:30').toISOString(), '2026-01-01T00:00:00.000Z', 'offset')
  t.equal(parseRfc3339('2026-01-01T00:00:00.25Z').getTime(), Date.parse('2026-01-01T00:00:00.250Z'), 'fraction')
  t.equal(rfc3339Millis('0050-06-01T00:00:00Z'), Date.parse('0050-06-01T00:00:00Z'), 'a two-digit year is not moved to the 1900s')
})

t.test('reports: signed by the site key, fresh, not replayed', async (t) => {
  const site = generateKeyPair()
  const signed: ReportSigned = { type: 'report', site: 'cern', sent: rfc3339(NOW), agentVersion: '0.1.0', catalogues: [], images: [] }
  const r = signReport(signed, site)
  t.equal(verifyReport(r, site.publicKey, NOW).signed.site, 'cern')
  t.equal(code(() => verifyReport(r, generateKeyPair().publicKey, NOW)), 'SIGNATURE_MISSING', 'other site key')
  const tampered = structuredClone(r)
  tampered.signed.site = 'desy'
  t.equal(code(() => verifyReport(tampered, site.publicKey, NOW)), 'SIGNATURE_INVALID')
  t.equal(code(() => verifyReport(r, site.publicKey, new Date(NOW.getTime() + 3600_000))), 'EXPIRED', 'stale')
  t.equal(code(() => verifyReport(r, site.publicKey, NOW, rfc3339(NOW))), 'ROLLBACK', 'replay')
  t.equal(code(() => verifyReport({ signed: { ...signed, images: [{ state: 'bogus' }] }, signatures: r.signatures }, site.publicKey, NOW)), 'SCHEMA_INVALID')
})

t.test('config: defaults filled, every bad field named', async (t) => {
  const S = Type.Object({
    site: Type.String({ minLength: 1 }),
    api: Type.Object({ listen: Type.String({ default: '127.0.0.1:7800' }) }, { default: {} }),
    poll: Type.Integer({ minimum: 1 })
  }, { additionalProperties: false })
  t.same(loadConfig(S, 'site: cern\npoll: 60\n', 'agent.yaml'), { site: 'cern', poll: 60, api: { listen: '127.0.0.1:7800' } })
  try {
    loadConfig(S, 'site: ""\npoll: zero\nextra: 1\n', 'agent.yaml')
    t.fail('accepted')
  } catch (err) {
    t.type(err, ConfigError)
    const problems = (err as ConfigError).problems.join('\n')
    t.match(problems, /site/)
    t.match(problems, /poll/)
    t.match(problems, /extra/)
  }
  t.throws(() => loadConfig(S, 'site: [', 'agent.yaml'), /not valid YAML/)
})

t.test('host:port: split and joined with IPv6 brackets; the port checked only by isPort', async (t) => {
  t.same(splitHostPort('10.0.0.1:6881'), { host: '10.0.0.1', port: 6881 })
  t.same(splitHostPort('[::1]:7800'), { host: '::1', port: 7800 })
  t.equal(joinHostPort('::1', 7800), '[::1]:7800')
  t.equal(joinHostPort('example.org', 80), 'example.org:80')
  t.ok(Number.isNaN(splitHostPort('nohost').port))
  t.same([0, 1, 65535, 65536, 1.5].map(isPort), [false, true, true, false, false])
})

t.test('canonical addresses: one spelling per peer, whichever source named it', async (t) => {
  const cases: Array<[string, string]> = [
    ['0:0:0:0:0:0:0:1', '::1'], // PEX's uncompressed form, as the kernel spells it
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // lower case, the first longest zero run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays (RFC 5952)
    ['::ffff:10.0.0.2', '10.0.0.2'], // an IPv4 peer on a dual-stack socket
    ['0:0:0:0:0:ffff:a00:2', '10.0.0.2'], // the same from an added6 list
    ['10.0.0.2', '10.0.0.2'],
    ['fe80::1%eth0', 'fe80::1%eth0'], // zone ids are left alone
    ['example.org', 'example.org'],
    ['', '']
  ]
  for (const [raw, want] of cases) t.equal(canonicalHost(raw), want, JSON.stringify(raw))
  t.equal(canonicalAddr('[0:0:0:0:0:0:0:1]:6881'), '[::1]:6881')
  t.equal(canonicalAddr('::ffff:10.0.0.2:51413'), '10.0.0.2:51413')
  t.same(parseHostPort('[::1]:7800'), { host: '::1', port: 7800 })
  t.equal(parseHostPort(':6881'), undefined, 'no host')
  t.same(['nohost', ':6881', '10.0.0.1:0', '10.0.0.1:65536', '[::1]:x'].map(canonicalAddr), [undefined, undefined, undefined, undefined, undefined], 'no host or no valid port: nothing to dial')
})
