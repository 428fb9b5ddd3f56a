import t from 'tap'
import { addSignature, MAX_INDEX_BYTES, MAX_ROOT_BYTES, MAX_YAML_DEPTH, parseSignedYaml, serializeDocument } from '../lib/document.js'
import { buildRoot } from '../lib/catalogue-edit.js'
import { encodePublicKey, generateKeyPair } from '../lib/keys.js'
import type { ImageEntry, SignedDocument } from '../lib/schema.js'
import { checkIndexShape, checkRootShape } from '../lib/trust.js'
import { DAY, entry, NOW, trustSet } from './helpers/trust-fixture.js'

/*
 * The YAML pre-pass: bodies that cost the parser seconds to minutes (or the heap) are refused
 * before a tree is built, and the largest documents the schema allows still parse. Timings are
 * measured by hand, never asserted.
 */

const refusal = (text: string, max = MAX_INDEX_BYTES): { code: string, message: string } => {
  try { parseSignedYaml(text, max, 'index'); return { code: 'ACCEPTED', message: '' } } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message }
  }
}

t.test('bodies that are cheap to send and dear to parse are refused as TOO_LARGE', async (t) => {
  const n = 4_000_000
  const cases: Array<[string, string, RegExp]> = [
    ['8 MB of nested flow sequences', 'signed: {x: ' + '['.repeat(n) + ']'.repeat(n) + '}\nsignatures: []\n', /nests YAML collections more than 8 deep/],
    ['8 MB of nested block sequences', 'signed:\n  x:\n    ' + '- '.repeat(n) + '1\nsignatures: []\n', /nests YAML collections more than 8 deep/],
    ['nested block maps, one more space each line', 'signed:\n' + Array.from({ length: 2000 }, (_, i) => ' '.repeat(i + 1) + 'k:').join('\n') + '\nsignatures: []\n', /more than 8 deep/],
    ['nested explicit keys', 'signed:\n  ' + '? '.repeat(1000) + 'x\nsignatures: []\n', /more than 8 deep/],
    ['3 MB of [1,1,…]', 'signed: {x: [' + '1,'.repeat(1_500_000) + '1]}\nsignatures: []\n', /YAML tokens and lines/],
    ['a flow map of a million keys', 'signed: {' + 'a: 1, '.repeat(1_000_000) + '}\nsignatures: []\n', /YAML tokens and lines/],
    ['8 MB of blank lines', 'signed: {}\nsignatures: []\n' + '\n'.repeat(8_000_000), /YAML tokens and lines/],
    ['8 MB of comments', 'signed: {}\n' + '#\n'.repeat(n) + 'signatures: []\n', /YAML tokens and lines/],
    ['8 MB of commas', 'signed: [' + ','.repeat(8_000_000) + ']\nsignatures: []\n', /YAML tokens and lines/],
    ['an 8 MB quoted string', 'signed: "' + 'a'.repeat(8_000_000) + '"\nsignatures: []\n', /YAML token of 8000002 characters, over the limit/],
    ['an 8 MB multi-line plain scalar', 'signed: a\n' + ` ${'b'.repeat(98)}\n`.repeat(80_000) + 'signatures: []\n', /YAML token of \d+ characters/]
  ]
  for (const [what, text, message] of cases) {
    const r = refusal(text)
    t.equal(r.code, 'TOO_LARGE', what)
    t.match(r.message, message, what)
  }
  t.equal(refusal('signed: [' + '1,'.repeat(4000) + '1]\nsignatures: []\n', MAX_ROOT_BYTES).code, 'TOO_LARGE', 'a root gets the smaller budget of a root')
})

t.test('nesting up to the bound parses; one level more does not', async (t) => {
  // The envelope map is level 1, `signed`'s value level 2.
  const nested = (levels: number): string => `signed: ${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}\nsignatures: []\n`
  t.equal(refusal(nested(MAX_YAML_DEPTH)).code, 'ACCEPTED')
  t.equal(refusal(nested(MAX_YAML_DEPTH + 1)).code, 'TOO_LARGE')
  const block = (levels: number): string => 'signed:\n' + Array.from({ length: levels - 1 }, (_, i) => `${'  '.repeat(i + 1)}k${i}:`).join('\n') + ' x\nsignatures: []\n'
  t.equal(refusal(block(MAX_YAML_DEPTH)).code, 'ACCEPTED')
  t.equal(refusal(block(MAX_YAML_DEPTH + 1)).code, 'TOO_LARGE')
  const seqUnderKeys = 'signed:\n  a:\n  - b:\n    - c:\n      - x\n  d: y\nsignatures: []\n'
  t.equal(refusal(seqUnderKeys).code, 'ACCEPTED', 'sequences at their key\'s column')
})

t.test('the largest catalogue the schema allows still parses, in block or flow style', async (t) => {
  const images: ImageEntry[] = Array.from({ length: 10_000 }, (_, i) => entry(`img-${i}`, {
    name: `Image ${i}`,
    version: '2026.01.1',
    webSeeds: ['https://a.example.org/v1/images/x', 'https://b.example.org/x'],
    properties: { os_distro: 'alma', os_version: '9', hw_firmware_type: 'uefi' },
    expires: '2027-01-01T00:00:00Z'
  }))
  const revoked = Array.from({ length: 10_000 }, (_, i) => ({ id: `old-${i}`, reason: 'superseded', at: '2026-01-01T00:00:00Z' }))
  const signatures = Array.from({ length: 64 }, (_, i) => ({ keyid: i.toString(16).padStart(64, '0'), sig: `${'A'.repeat(86)}==` }))
  const doc = { signed: { type: 'index', name: 'atlas', version: 1, issued: '2026-01-01T00:00:00Z', expires: '2027-01-01T00:00:00Z', images, revoked }, signatures }
  const text = serializeDocument(doc)
  t.ok(Buffer.byteLength(text) <= MAX_INDEX_BYTES, `${Buffer.byteLength(text)} bytes fit the byte limit`)
  const parsed = checkIndexShape(parseSignedYaml(text, MAX_INDEX_BYTES, 'index'))
  t.equal(parsed.signed.images.length, 10_000)
  t.equal(parsed.signed.revoked.length, 10_000)

  const keys = Array.from({ length: 128 }, () => encodePublicKey(generateKeyPair().publicKey))
  const root = buildRoot({
    name: 'atlas', expires: new Date(NOW.getTime() + 365 * DAY),
    rootKeys: keys.slice(0, 64), rootThreshold: 1, indexKeys: keys.slice(64), indexThreshold: 1
  })
  const signedRoot: SignedDocument<unknown> = { signed: root.signed, signatures }
  for (const [style, rootText] of [['block', serializeDocument(signedRoot)], ['JSON', JSON.stringify(signedRoot, null, 1)]]) {
    t.equal(Object.keys(checkRootShape(parseSignedYaml(rootText as string, MAX_ROOT_BYTES, 'root')).signed.keys).length, 128, `a root with every key slot (${style ?? ''})`)
  }
  const small = addSignature(trustSet().index(1), generateKeyPair())
  t.same(parseSignedYaml(JSON.stringify(small), MAX_INDEX_BYTES), small, 'an index written as JSON')
})
