import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { isOneErrorLine, runSigner } from './helpers/signer-run.js'
import { indexCli } from './index-fixture.js'

// --help for every command, and every kind of bad input: exit 2 with one stderr line, no stack.

const dir = await mkdtemp(join(tmpdir(), 'imgdist-signer-usage-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const sign = async (...args: string[]): ReturnType<typeof runSigner> => await runSigner(args, { cwd: dir })
const run = promisify(execFile)

const FLAGS: Record<string, string[]> = {
  keygen: ['--out'],
  'init-root': ['--name', '--root-key', '--root-threshold', '--index-key', '--index-threshold', '--expires', '--from', '--version', '--out', '--force'],
  'sign-root': ['--key'],
  add: ['--index', '--id', '--version', '--disk-format', '--name', '--container-format', '--os', '--arch', '--min-disk', '--min-ram',
    '--property', '--web-seed', '--tracker', '--expires', '--index-expires', '--torrent-dir', '--piece-length', '--hash-threads',
    '--catalogue', '--root'],
  revoke: ['--index', '--id', '--reason', '--index-expires'],
  sign: ['--index', '--key', '--expires', '--root', '--renew', '--force'],
  verify: ['--root', '--min-version', '--now'],
  publish: ['--server', '--index', '--root', '--timeout']
}

t.test('--help for the top level and each command', async (t) => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const r = await sign(...args)
    t.equal(r.code, 0, args.join(' '))
    for (const c of Object.keys(FLAGS)) t.match(r.stdout, new RegExp(`^    ${c} `, 'm'), `top-level help lists ${c}`)
    t.match(r.stdout, /EXIT STATUS/)
  }
  for (const [cmd, flags] of Object.entries(FLAGS)) {
    for (const form of [[cmd, '--help'], ['help', cmd]]) {
      const r = await sign(...form)
      t.equal(r.code, 0, form.join(' '))
      t.equal(r.stderr, '')
      for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXAMPLES', 'EXIT STATUS']) t.match(r.stdout, new RegExp(`^${section}$`, 'm'), `${cmd}: ${section}`)
      for (const f of [...flags, '--help']) t.ok(r.stdout.includes(f), `${cmd} --help mentions ${f}`)
    }
  }
  const v = await sign('--version')
  t.equal(v.code, 0)
  t.match(v.stdout, /^imgdist-sign \d+\.\d+\.\d+/)
})

t.test('keygen: 0600, refuses to overwrite', async (t) => {
  const r = await sign('keygen', '--out', 'k')
  t.equal(r.code, 0)
  t.equal((await stat(join(dir, 'k.key'))).mode & 0o777, 0o600)
  t.match(await readFile(join(dir, 'k.pub'), 'utf8'), /^ed25519:[A-Za-z0-9+/]{43}=\n$/)
  const before = await readFile(join(dir, 'k.key'))
  const again = await sign('keygen', '--out', 'k')
  t.equal(again.code, 2)
  t.ok(isOneErrorLine(again.stderr), again.stderr)
  t.match(again.stderr, /already exists/)
  t.same(await readFile(join(dir, 'k.key')), before, 'the existing secret key is untouched')
  await writeFile(join(dir, 'half.pub'), 'x')
  t.equal((await sign('keygen', '--out', 'half')).code, 2, 'an existing .pub also refuses')
  await t.rejects(stat(join(dir, 'half.key')), 'and no .key is left behind')
})

t.test('usage errors: exit 2, one line, no stack', async (t) => {
  await sign('keygen', '--out', 'r')
  await sign('init-root', '--name', 'u', '--root-key', 'r.pub', '--index-key', 'r.pub', '--out', 'root.yaml')
  await sign('sign-root', '--key', 'r.key', 'root.yaml')
  await writeFile(join(dir, 'garbage.yaml'), 'signed: {type: index\n  - ]]]\n')
  await writeFile(join(dir, 'img.raw'), 'not really an image')
  const cases: Array<[string, string[], RegExp]> = [
    ['no command', [], /USAGE: no command given/],
    ['unknown command', ['frobnicate'], /USAGE: unknown command "frobnicate"/],
    ['unknown flag', ['verify', '--bogus'], /USAGE: Unknown option '--bogus'/],
    ['flag without value', ['keygen', '--out'], /USAGE: .*--out/],
    ['missing required flag', ['sign', '--key', 'r.key'], /USAGE: sign: --index is required/],
    ['missing file (index)', ['sign', '--index', 'nope.yaml', '--key', 'r.key'], /NOT_FOUND: nope.yaml: no such file/],
    ['missing file (key)', ['sign-root', '--key', 'nope.key', 'root.yaml'], /NOT_FOUND: nope.key: no such file/],
    ['missing file (image)', ['add', 'nope.raw', '--index', 'i.yaml', '--catalogue', 'u', '--id', 'x', '--version', '1', '--disk-format', 'raw'], /NOT_FOUND: nope.raw/],
    ['missing DOC for verify', ['verify', '--root', 'root.yaml', 'nope.yaml'], /NOT_FOUND/],
    ['wrong key file (.pub as --key)', ['sign-root', '--key', 'r.pub', 'root.yaml'], /KEY_INVALID: r.pub: this is a public key/],
    ['wrong key file (.key as --root-key)', ['init-root', '--name', 'u', '--root-key', 'r.key', '--index-key', 'r.pub', '--out', 'x.yaml'], /KEY_INVALID: .*secret key/],
    ['garbage YAML as the index to sign', ['sign', '--index', 'garbage.yaml', '--key', 'r.key'], /YAML_INVALID: garbage.yaml is not valid YAML/],
    ['garbage YAML as the trusted root', ['verify', '--root', 'garbage.yaml', 'root.yaml'], /YAML_INVALID/],
    ['garbage YAML as the index to add to', ['add', 'img.raw', '--index', 'garbage.yaml', '--id', 'x', '--version', '1', '--disk-format', 'raw'], /YAML_INVALID/],
    ['an index where a root belongs', ['init-root', '--from', 'garbage.yaml'], /YAML_INVALID/],
    ['bad duration', ['init-root', '--name', 'u', '--root-key', 'r.pub', '--index-key', 'r.pub', '--expires', '1year', '--out', 'y.yaml'], /USAGE: --expires must look like/],
    ['bad --now', ['verify', '--root', 'root.yaml', '--now', 'yesterday', 'root.yaml'], /USAGE: --now must be RFC 3339/],
    ['bad piece length', ['add', 'img.raw', '--index', 'i.yaml', '--catalogue', 'u', '--id', 'x', '--version', '1', '--disk-format', 'raw', '--piece-length', '1000'], /power of two/],
    ['bad id', ['add', 'img.raw', '--index', 'i.yaml', '--catalogue', 'u', '--id', '../../etc', '--version', '1', '--disk-format', 'raw'], /UNSAFE_NAME/],
    ['bad disk format', ['add', 'img.raw', '--index', 'i.yaml', '--catalogue', 'u', '--id', 'x', '--version', '1', '--disk-format', 'floppy'], /SCHEMA_INVALID: .*diskFormat/],
    ['new index without a catalogue name', ['add', 'img.raw', '--index', 'i.yaml', '--id', 'x', '--version', '1', '--disk-format', 'raw'], /--catalogue NAME or --root/],
    ['threshold above key count', ['init-root', '--name', 'u', '--root-key', 'r.pub', '--index-key', 'r.pub', '--index-threshold', '2', '--out', 'z.yaml'], /SCHEMA_INVALID: .*threshold 2/],
    ['publish without documents', ['publish', '--server', 'http://127.0.0.1:9'], /USAGE: publish: give --index/]
  ]
  for (const [what, args, re] of cases) {
    const r = await sign(...args)
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`)
    t.ok(isOneErrorLine(r.stderr), `${what}: one line, no stack`)
    t.match(r.stderr, re, what)
  }
  t.rejects(stat(join(dir, 'i.yaml')), 'no failed add left an index behind')
})

t.test('the three programs print a usage error in one style: "<program>: USAGE: what is wrong"', async (t) => {
  const agentBin = join(import.meta.dirname, '..', 'dist', 'bin', 'imgdist-agent.js')
  const lines: Record<string, string> = {
    'imgdist-sign': (await sign('frobnicate')).stderr,
    'imgdist-index': (await indexCli(['frobnicate'])).stderr,
    'imgdist-agent': await run(process.execPath, [agentBin, 'frobnicate']).then(() => '', (err: { stderr: string }) => err.stderr)
  }
  for (const [program, stderr] of Object.entries(lines)) {
    t.match(stderr.split('\n')[0], new RegExp(`^${program}: USAGE: unknown command "frobnicate"`), program)
  }
})
