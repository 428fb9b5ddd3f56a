import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseSignedYaml } from '../lib/document.js'
import type { IndexSigned } from '../lib/schema.js'
import { parseTorrent } from '../lib/torrent-meta.js'
import { hashFile, writeRandomFile } from './helpers/catalogue-fixture.js'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'

// keygen -> init-root (3 index keys, threshold 2) -> add a 50 MB image -> sign 2 of 3 -> verify,
// then every way the result can be refused, all through the real built binary.

const dir = await mkdtemp(join(tmpdir(), 'imgdist-signer-flow-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })
const indexOf = async (path = 'index.yaml'): Promise<IndexSigned> =>
  parseSignedYaml(await readFile(join(dir, path)), 1 << 23).signed as IndexSigned

const IMAGE_SIZE = 50 * 1000 * 1000 + 7 // not a multiple of the piece size: the last piece is short

t.test('keygen, init-root, sign-root', async (t) => {
  for (const k of ['root', 'alice', 'bob', 'carol']) {
    const r = await sign('keygen', '--out', k)
    t.equal(r.code, 0, `keygen ${k}: ${r.stderr}`)
    t.match(r.stdout, /^[0-9a-f]{64}\n$/, 'prints the key id')
    t.equal((await stat(join(dir, `${k}.key`))).mode & 0o777, 0o600, 'secret key is mode 0600')
  }
  const inline = (await readFile(join(dir, 'carol.pub'), 'utf8')).trim()
  const r = await sign('init-root', '--name', 'flow-test', '--root-key', 'root.pub', '--index-key', 'alice.pub',
    '--index-key', 'bob.pub', '--index-key', inline, '--index-threshold', '2', '--out', 'root.yaml')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /index keys 3 \(threshold 2\)/)
  t.equal((await sign('sign-root', '--key', 'root.key', 'root.yaml')).code, 0)
  const v = await sign('verify', '--root', 'root.yaml', 'root.yaml')
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /^OK root flow-test v1: self-signed/)
})

t.test('add a 50 MB image', async (t) => {
  await writeRandomFile(join(dir, 'image.raw'), IMAGE_SIZE)
  const r = await sign('add', 'image.raw', '--index', 'index.yaml', '--root', 'root.yaml', '--id', 'alma9-20250101',
    '--name', 'AlmaLinux 9', '--version', '2025.01.01', '--disk-format', 'qcow2', '--min-disk', '10', '--min-ram', '1024',
    '--property', 'os_distro=almalinux', '--property', 'hw_firmware_type=uefi',
    '--web-seed', 'http://127.0.0.1:9/v1/images/', '--tracker', 'http://127.0.0.1:9/announce', '--expires', '180d')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '', 'no progress output when stderr is not a terminal')
  const idx = await indexOf()
  t.equal(idx.version, 1)
  const img = idx.images[0]
  if (img === undefined) throw new Error('no image in the index')
  const expected = await hashFile(join(dir, 'image.raw'), 1024 * 1024)
  t.equal(img.sha512, expected.sha512, 'sha512 equals lib ImageHasher over the file')
  t.equal(img.size, IMAGE_SIZE)
  t.same(img.properties, { os_distro: 'almalinux', hw_firmware_type: 'uefi' })
  t.same(img.webSeeds, ['http://127.0.0.1:9/v1/images/'])
  t.equal(img.torrent, `torrents/${img.infoHash}.torrent`)
  t.ok(img.expires !== undefined, 'per-image expiry set')
  const torrent = parseTorrent(await readFile(join(dir, img.torrent)), { infoHash: img.infoHash, length: IMAGE_SIZE })
  t.equal(torrent.name, 'alma9-20250101', 'torrent is named after the image id')
  t.same(torrent.webSeeds, ['http://127.0.0.1:9/v1/images/'], 'web seeds in the url-list')
  t.same(torrent.announce, ['http://127.0.0.1:9/announce'])
  t.equal(torrent.pieceLength, 1024 * 1024, 'default piece length chosen from the size')
})

t.test('aria2c reads the .torrent: same info hash and total length', async (t) => {
  const aria = spawnSync('aria2c', ['--version'], { encoding: 'utf8' })
  if (aria.error !== undefined || aria.status !== 0) {
    const why = 'aria2c is not installed (apt-get install aria2): the independent-client check of the .torrent did NOT run'
    console.error(`SKIPPED: ${why}`)
    t.pass('aria2c check', { skip: why })
    return
  }
  const img = (await indexOf()).images[0]
  if (img === undefined) throw new Error('no image')
  const r = spawnSync('aria2c', ['--show-files', join(dir, img.torrent)], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.equal(/^Info Hash: ([0-9a-f]{40})$/m.exec(r.stdout)?.[1], img.infoHash, 'aria2c computes the same info hash')
  t.equal(Number(/^Total Length: .*\(([\d,]+)\)$/m.exec(r.stdout)?.[1]?.replace(/,/g, '')), IMAGE_SIZE, 'aria2c reports the same length')
  t.match(r.stdout, /^Name: alma9-20250101$/m)
})

t.test('co-signing up to the threshold', async (t) => {
  const first = await sign('sign', '--index', 'index.yaml', '--key', 'alice.key', '--expires', '14d', '--root', 'root.yaml')
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /now 1 of threshold 2 valid index signature\(s\), 1 more needed: /)
  await writeFile(join(dir, 'one-sig.yaml'), await readFile(join(dir, 'index.yaml')))
  const one = await sign('verify', '--root', 'root.yaml', 'one-sig.yaml')
  t.equal(one.code, 1, 'one signature of a threshold of two is refused')
  t.match(one.stderr, /THRESHOLD_NOT_MET/)
  t.ok(isOneErrorLine(one.stderr), one.stderr)

  const again = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key', '--expires', '30d')
  t.equal(again.code, 2, 'a co-signer may not change expires')
  t.match(again.stderr, /already has 1 signature/)
  t.match(again.stderr, /a later expiry needs a new version: the first signer runs imgdist-sign sign --renew \[--expires DURATION\], then the others sign that/, 'and how to get a later expiry')

  const second = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key')
  t.equal(second.code, 0, second.stderr)
  const v = await sign('verify', '--root', 'root.yaml', 'index.yaml')
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /^OK index flow-test v1: 1 image\(s\), 0 revoked, signed by 2 of 3 index keys, threshold 2 \(/)
  t.equal(v.stdout.split('\n').filter(Boolean).length, 1, 'one-line summary')
  const twice = await sign('sign', '--index', 'index.yaml', '--key', 'bob.key')
  t.equal(twice.code, 0)
  t.equal((await sign('verify', '--root', 'root.yaml', 'index.yaml')).code, 0, 'signing twice with one key is harmless')

  // an index that expired after its first signature: the co-signer is told how to renew it, not
  // to pass --expires, which is refused once the index is signed
  await writeFile(join(dir, 'lapsing.yaml'), await readFile(join(dir, 'index.yaml')))
  t.equal((await sign('revoke', '--index', 'lapsing.yaml', '--id', 'alma9-20250101', '--reason', 'test')).code, 0)
  t.equal((await sign('sign', '--index', 'lapsing.yaml', '--key', 'alice.key', '--expires', '1s')).code, 0)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const late = await sign('sign', '--index', 'lapsing.yaml', '--key', 'bob.key')
  t.equal(late.code, 0, 'signed anyway')
  t.match(late.stderr, /warning: lapsing\.yaml v\d+ expired at \S+; agents will refuse it \(a later expiry needs a new version: the first signer runs imgdist-sign sign --renew/)
  t.notMatch(late.stderr, /first signer can pass --expires/)
})

t.test('tampering with one byte of signed is refused', async (t) => {
  const text = await readFile(join(dir, 'index.yaml'), 'utf8')
  const cases: Array<[string, string]> = [
    ['size digit', text.replace(`size: ${IMAGE_SIZE}`, `size: ${IMAGE_SIZE + 1}`)],
    ['name character', text.replace('name: AlmaLinux 9', 'name: AlmaLinux 8')],
    ['sha512 hex digit', text.replace(/sha512: ([0-9a-f])/, (_m, c: string) => `sha512: ${c === 'a' ? 'b' : 'a'}`)]
  ]
  for (const [what, tampered] of cases) {
    t.not(tampered, text, `${what} was changed`)
    t.equal(Buffer.byteLength(tampered), Buffer.byteLength(text), 'same length: one byte differs')
    await writeFile(join(dir, 'tampered.yaml'), tampered)
    const r = await sign('verify', '--root', 'root.yaml', 'tampered.yaml')
    t.equal(r.code, 1, `${what}: exit 1`)
    t.match(r.stderr, /^imgdist-sign: SIGNATURE_INVALID: index v1: signature by key/, what)
    t.ok(isOneErrorLine(r.stderr), r.stderr)
  }
})

t.test('expiry, minimum version, garbage as the verified document', async (t) => {
  const late = await sign('verify', '--root', 'root.yaml', '--now', '2099-01-01T00:00:00Z', 'index.yaml')
  t.equal(late.code, 1)
  t.match(late.stderr, /EXPIRED/)
  const idx = await indexOf()
  const soon = new Date(Date.parse(idx.expires) + 1000).toISOString()
  const indexLate = await sign('verify', '--root', 'root.yaml', '--now', soon, 'index.yaml')
  t.equal(indexLate.code, 1)
  t.match(indexLate.stderr, /EXPIRED: index v1 expired/)
  const min = await sign('verify', '--root', 'root.yaml', '--min-version', '2', 'index.yaml')
  t.equal(min.code, 1)
  t.match(min.stderr, /ROLLBACK/)
  await writeFile(join(dir, 'garbage.yaml'), 'signed: [unclosed\n  - {')
  const g = await sign('verify', '--root', 'root.yaml', 'garbage.yaml')
  t.equal(g.code, 1, 'garbage as the document under verification is a verification failure')
  t.match(g.stderr, /YAML_INVALID/)
  t.ok(isOneErrorLine(g.stderr), g.stderr)
  await writeFile(join(dir, 'huge.yaml'), Buffer.alloc(9 * 1024 * 1024, 0x20))
  const huge = await sign('verify', '--root', 'root.yaml', 'huge.yaml')
  t.equal(huge.code, 1, 'an oversized document under verification is refused')
  t.match(huge.stderr, /TOO_LARGE: huge.yaml is 9437184 bytes, over the limit/)
  const hugeInput = await sign('sign', '--index', 'huge.yaml', '--key', 'alice.key')
  t.equal(hugeInput.code, 2, 'an oversized input to edit is a usage error')
  t.match(hugeInput.stderr, /TOO_LARGE/)
})

t.test('revoke, re-sign, verify; replacing an entry', async (t) => {
  const r = await sign('revoke', '--index', 'index.yaml', '--id', 'alma9-20250101', '--reason', 'CVE-2025-0001')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /dropped 2 signature/)
  const unsigned = await sign('verify', '--root', 'root.yaml', 'index.yaml')
  t.equal(unsigned.code, 1)
  t.match(unsigned.stderr, /SIGNATURE_MISSING/)
  t.equal((await sign('sign', '--index', 'index.yaml', '--key', 'alice.key', '--key', 'carol.key')).code, 0)
  const v = await sign('verify', '--root', 'root.yaml', 'index.yaml')
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /OK index flow-test v2: 0 image\(s\), 1 revoked/)
  const missing = await sign('revoke', '--index', 'index.yaml', '--id', 'nope', '--reason', 'x')
  t.equal(missing.code, 2)
  t.match(missing.stderr, /NOT_FOUND/)
})

t.test('one and two hashing threads agree with lib ImageHasher, small pieces', async (t) => {
  const size = 3 * 1024 * 1024 + 12345
  await writeRandomFile(join(dir, 'small.raw'), size)
  const expected = await hashFile(join(dir, 'small.raw'), 16384)
  const hashes = new Set<string>()
  for (const threads of ['1', '2']) {
    const idx = `small-${threads}.yaml`
    const r = await sign('add', 'small.raw', '--index', idx, '--catalogue', 'flow-test', '--id', 'small', '--version', '1',
      '--disk-format', 'raw', '--piece-length', '16384', '--hash-threads', threads, '--torrent-dir', `t${threads}`)
    t.equal(r.code, 0, r.stderr)
    const img = (await indexOf(idx)).images[0]
    if (img === undefined) throw new Error('no image')
    t.equal(img.sha512, expected.sha512, `threads ${threads}: sha512`)
    const tor = parseTorrent(await readFile(join(dir, `t${threads}`, `${img.infoHash}.torrent`)))
    t.equal(tor.pieceLength, 16384)
    t.equal(tor.pieceCount, Math.ceil(size / 16384))
    hashes.add(img.infoHash)
  }
  t.equal(hashes.size, 1, 'both thread modes give the same info hash')
  t.notOk(existsSync(join(dir, 'torrents', 'small.torrent')))
})

t.test('add refuses properties every Glance site would refuse, naming each, before hashing', async (t) => {
  await writeFile(join(dir, 'props.raw'), Buffer.alloc(4096, 1))
  const r = await sign('add', 'props.raw', '--index', 'props.yaml', '--catalogue', 'flow-test', '--id', 'props', '--version', '1',
    '--disk-format', 'raw', '--property', 'visibility=public', '--property', 'os_glance_import_method=x',
    '--property', 'imgdist_sha512=00', '--property', `os_distro=${'x'.repeat(300)}`, '--property', 'hw_firmware_type=uefi')
  t.equal(r.code, 2, 'a usage error, like every other bad flag of add')
  t.ok(isOneErrorLine(r.stderr), r.stderr)
  t.match(r.stderr, /USAGE: add: --property that Glance sites refuse: visibility: reserved; os_glance_import_method: reserved; imgdist_sha512: reserved; os_distro: longer than 255 characters\n$/)
  t.notOk(existsSync(join(dir, 'props.yaml')), 'no index written')
  const ok = await sign('add', 'props.raw', '--index', 'props.yaml', '--catalogue', 'flow-test', '--id', 'props', '--version', '1',
    '--disk-format', 'raw', '--property', `os_distro=${'x'.repeat(255)}`, '--property', 'hw_firmware_type=uefi')
  t.equal(ok.code, 0, `255 characters and an ordinary name are fine: ${ok.stderr}`)
})
