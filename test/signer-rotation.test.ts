import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { writeRandomFile } from './helpers/catalogue-fixture.js'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'

// Root key rotation (TUF): v2 counts only with a threshold of v1's root keys AND of its own.

const dir = await mkdtemp(join(tmpdir(), 'imgdist-signer-rotation-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })
const ok = async (t: Test, ...args: string[]): Promise<string> => {
  const r = await sign(...args)
  t.equal(r.code, 0, `${args[0] as string}: ${r.stderr}`)
  return r.stdout
}

t.test('rotation', async (t) => {
  for (const k of ['old-root', 'new-root', 'idx1', 'idx2']) await ok(t, 'keygen', '--out', k)
  await ok(t, 'init-root', '--name', 'rot', '--root-key', 'old-root.pub', '--index-key', 'idx1.pub', '--out', 'root-v1.yaml')
  await ok(t, 'sign-root', '--key', 'old-root.key', 'root-v1.yaml')

  const made = await ok(t, 'init-root', '--from', 'root-v1.yaml', '--root-key', 'new-root.pub', '--index-key', 'idx2.pub', '--out', 'root-v2.yaml')
  t.match(made, /catalogue rot v2/, 'version is old + 1, same name')
  const exists = await sign('init-root', '--from', 'root-v1.yaml', '--out', 'root-v2.yaml')
  t.equal(exists.code, 2, 'refuses to overwrite without --force')

  const note = await sign('sign-root', '--key', 'new-root.key', 'root-v2.yaml')
  t.equal(note.code, 0)
  const onlyNew = await sign('verify', '--root', 'root-v1.yaml', 'root-v2.yaml')
  t.equal(onlyNew.code, 1, 'signed only by the new root key: refused')
  t.match(onlyNew.stderr, /THRESHOLD_NOT_MET: root v2 \(by the keys of root v1\)/)
  t.ok(isOneErrorLine(onlyNew.stderr), onlyNew.stderr)

  const old = await sign('sign-root', '--key', 'old-root.key', 'root-v2.yaml')
  t.equal(old.code, 0)
  t.match(old.stderr, /not a root key of root-v2.yaml v2/, 'notes that the old key only counts for the previous root')
  const both = await sign('verify', '--root', 'root-v1.yaml', 'root-v2.yaml')
  t.equal(both.code, 0, both.stderr)
  t.match(both.stdout, /^OK root rot v2: successor of v1, signed by 1 of 1 v1 root keys.* and 1 of 1 v2 root keys/)

  // Only the old key: the new root's own threshold is not met.
  await writeFile(join(dir, 'root-v2-old-only.yaml'), await readFile(join(dir, 'root-v2.yaml')))
  await ok(t, 'init-root', '--from', 'root-v1.yaml', '--root-key', 'new-root.pub', '--out', 'root-v2b.yaml')
  await ok(t, 'sign-root', '--key', 'old-root.key', 'root-v2b.yaml')
  const onlyOld = await sign('verify', '--root', 'root-v1.yaml', 'root-v2b.yaml')
  t.equal(onlyOld.code, 1)
  t.match(onlyOld.stderr, /THRESHOLD_NOT_MET: root v2 \(by its own root keys\)/)

  // Not the direct successor.
  await ok(t, 'init-root', '--from', 'root-v2.yaml', '--out', 'root-v3.yaml')
  await ok(t, 'sign-root', '--key', 'new-root.key', 'root-v3.yaml')
  const gap = await sign('verify', '--root', 'root-v1.yaml', 'root-v3.yaml')
  t.equal(gap.code, 1)
  t.match(gap.stderr, /VERSION_GAP/)
  t.equal((await sign('verify', '--root', 'root-v2.yaml', 'root-v3.yaml')).code, 0, 'v3 inherits v2 roles and verifies against v2')

  // An index signed by the rotated index key verifies under v2, not under v1.
  await writeRandomFile(join(dir, 'img.raw'), 100_000)
  await ok(t, 'add', 'img.raw', '--index', 'index.yaml', '--root', 'root-v2.yaml', '--id', 'img', '--version', '1', '--disk-format', 'raw', '--piece-length', '16384')
  await ok(t, 'sign', '--index', 'index.yaml', '--key', 'idx2.key', '--root', 'root-v2.yaml')
  t.equal((await sign('verify', '--root', 'root-v2.yaml', 'index.yaml')).code, 0)
  const underV1 = await sign('verify', '--root', 'root-v1.yaml', 'index.yaml')
  t.equal(underV1.code, 1)
  t.match(underV1.stderr, /THRESHOLD_NOT_MET/)
  const wrongKey = await sign('sign', '--index', 'index.yaml', '--key', 'idx1.key', '--root', 'root-v2.yaml')
  t.equal(wrongKey.code, 2, 'sign --root refuses a key outside the index role')

  // An expired trusted root makes every check fail.
  const late = await sign('verify', '--root', 'root-v1.yaml', '--now', '2200-01-01T00:00:00Z', 'root-v2.yaml')
  t.equal(late.code, 1)
  t.match(late.stderr, /EXPIRED: trusted root v1/)
})
