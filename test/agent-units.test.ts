import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '../lib/errors.js'
import type { ImageEntry } from '../lib/schema.js'
import { backoffMs } from '../lib/backoff.js'
import { chooseEvictions } from '../agent/cache.js'
import { resolveConfig } from '../agent/config.js'
import { formatImages, formatStatus, table } from '../agent/format.js'
import { decide, globToRegExp, retireDue } from '../agent/policy.js'
import { buildReport, reportUrl } from '../agent/reporter.js'
import { createDirectoryTarget } from '../agent/targets/directory-target.js'
import { createTarget } from '../agent/targets/create-target.js'
import { verifyImageFile } from '../agent/verifier.js'
import { AGENT_BIN } from './helpers/agent-proc.js'
import { createHash } from 'node:crypto'
import { pino } from 'pino'

const entry = (over: Partial<ImageEntry> = {}): ImageEntry => ({
  id: 'ubuntu-24.04', name: 'Ubuntu 24.04', version: '20260101', sha512: 'a'.repeat(128), size: 1000, infoHash: 'b'.repeat(40),
  torrent: 'torrents/x.torrent', diskFormat: 'qcow2', containerFormat: 'bare', minDisk: 10, minRam: 512, arch: 'x86_64', os: 'linux',
  properties: {}, ...over
})

const minimal = `
site: site-a
dataDir: /var/lib/imgdist
subscriptions:
  - url: https://images.example.org/v1/index.yaml
    root: /etc/imgdist/root.yaml
`

t.test('config: defaults, resolved paths and durations', async (t) => {
  const c = resolveConfig(minimal, '/etc/imgdist/agent.yaml')
  t.equal(c.apiHost, '127.0.0.1')
  t.equal(c.apiPort, 7800)
  t.equal(c.swarm.dht.enabled, true)
  t.equal(c.swarm.maxConcurrentDownloads, 2)
  t.equal(c.subscriptions[0]?.pollIntervalMs, 300_000)
  t.equal(c.policy.approval, 'auto')
  t.same(c.targets, [{ name: 'images', type: 'directory', path: '/var/lib/imgdist/images' }], 'the directory target is the default')
  const rel = resolveConfig(minimal.replace('/var/lib/imgdist', 'data').replace('/etc/imgdist/root.yaml', 'root.yaml'), '/etc/x/agent.yaml')
  t.equal(rel.dataDir, '/etc/x/data')
  t.equal(rel.subscriptions[0]?.root, '/etc/x/root.yaml')
  t.equal(resolveConfig(minimal.replace('index.yaml', ''), 'a.yaml').subscriptions[0]?.url, 'https://images.example.org/v1/index.yaml')
})

t.test('config: every bad field is named', async (t) => {
  const bad = `
site: Site A
dataDir: /d
api: { listen: nowhere }
swarm: { maxConcurrentDownloads: 0, dht: { enabled: maybe } }
subscriptions:
  - url: ftp://x
    root: /r
    pollInterval: soon
policy: { approval: sometimes }
targets:
  - { name: a, type: directory, path: /x }
  - { name: a, type: directory, path: /y }
surprise: 1
`
  const err = t.throws(() => resolveConfig(bad, 'agent.yaml')) as ConfigError
  t.ok(err instanceof ConfigError)
  t.equal(err.code, 'CONFIG_INVALID')
  for (const field of ['site', 'api.listen', 'swarm.maxConcurrentDownloads', 'swarm.dht.enabled', 'subscriptions[0].url', 'subscriptions[0].pollInterval', 'policy.approval', 'surprise']) {
    t.ok(err.problems.some((p) => p.startsWith(field)), `names ${field}`)
  }
  const dup = t.throws(() => resolveConfig(minimal + 'targets:\n  - { name: a, type: directory, path: /x }\n  - { name: a, type: directory, path: /y }\n', 'agent.yaml')) as ConfigError
  t.match(dup.message, /targets\[1\]\.name/)
  t.throws(() => resolveConfig('site: [', 'agent.yaml'), /not valid YAML/)
})

t.test('config: a timer duration over what Node\'s timers hold (24.8 days) is refused by name, not turned into a 1 ms loop', async (t) => {
  const problems = (text: string): string[] => (t.throws(() => resolveConfig(text, 'agent.yaml')) as ConfigError).problems
  const sub = minimal.replace(/root: .*\n/, (line) => `${line}    pollInterval: 30d\n`)
  t.not(sub, minimal, 'the fixture has a subscription to put the interval in')
  t.match(problems(sub), [/^subscriptions\[0\]\.pollInterval: .*at most 24d/])
  t.match(problems(minimal + 'retry: { initial: 5s, max: 4w }\nreport: { url: https://x, siteKey: /k, interval: 25d }\n'),
    [/^report\.interval: .*at most 24d/, /^retry\.max: .*at most 24d/])
  const ok = resolveConfig(sub.replace('30d', '24d') + 'retry: { max: 3w }\n', 'agent.yaml')
  t.equal(ok.subscriptions[0]?.pollIntervalMs, 24 * 86_400_000, '24 days is still a timer Node can hold')
  t.equal(ok.retryMaxMs, 21 * 86_400_000)
})

t.test('config: a duration parseDuration refuses (0, too many digits) is refused by the schema, named with the file\'s other problems', async (t) => {
  const problems = (text: string): string[] => (t.throws(() => resolveConfig(minimal + text, 'agent.yaml')) as ConfigError).problems
  // before one duration schema, retireGrace's pattern let these through: the field was named only
  // once every other field was right, in a second round, with parseDuration's words
  for (const bad of ['0s', '0d', '99999999999999999999w']) {
    t.same(problems(`policy: { retireGrace: ${bad} }\nlogLevel: loud\n`).sort(), [
      'logLevel: must be one of "fatal", "error", "warn", "info", "debug", "trace", not "loud"',
      `policy.retireGrace: ${JSON.stringify(bad)} is not valid: how long to wait before retiring an image: "0" (at once) or a duration like 1h (s, m, h, d, w), above 0`
    ], `retireGrace: ${bad}`)
  }
  t.match(problems('retry: { initial: 0s }\n'), [/^retry\.initial: .*above 0/], 'a timer duration of 0 too')
  t.equal(resolveConfig(minimal + 'policy: { retireGrace: "0" }\n', 'agent.yaml').policy.retireGraceMs, 0, 'the literal "0" still means at once')
  t.equal(resolveConfig(minimal + 'policy: { retireGrace: 2w }\n', 'agent.yaml').policy.retireGraceMs, 14 * 86_400_000)
})

t.test('config errors a newcomer meets name the field and the allowed values, Glance fields included', async (t) => {
  const problems = (text: string): string[] => (t.throws(() => resolveConfig(minimal + text, 'agent.yaml')) as ConfigError).problems
  t.same(problems('policy: { approval: manualy }\n'), ['policy.approval: must be one of "auto", "manual", not "manualy"'])
  t.same(problems('targets: [{ type: directory, path: /x }]\n'), ['targets[0].name: Expected required property (lower-case [a-z0-9._-])'], 'a missing name, said once')
  t.same(problems('targets: [{ name: a, type: glanc }]\n'), ['targets[0].type: must be one of "directory", "glance", not "glanc"'])
  // one error names the core field and the Glance fields together (they used to come in two rounds)
  t.same(problems('logLevel: loud\ntargets: [{ name: cloud-a, type: glance, region: 5, visibility: world }]\n').sort(), [
    'logLevel: must be one of "fatal", "error", "warn", "info", "debug", "trace", not "loud"',
    'targets[0].region: Expected string (service catalog region)',
    'targets[0].visibility: must be one of "private", "shared", "community", "public", not "world"'
  ])
  t.match(problems('targets: [{ name: CloudA, type: glance }]\n'), [/^targets\[0\]\.name: .*lower-case/], 'glance names follow the same rule as every target name')
  t.same(problems('report: { url: "http://[::1/r", siteKey: k }\n'), ['report.url: "http://[::1/r" is not a valid URL'])
  const ok = resolveConfig(minimal + 'targets: [{ name: cloud-a, type: glance, cloud: c }]\n', 'agent.yaml')
  t.match(ok.targets[0], { name: 'cloud-a', type: 'glance', visibility: 'private', tags: ['imgdist'] }, 'a good glance target gets its defaults')
})

t.test('targets: glance is loaded through the factory; unknown types are refused', async (t) => {
  const log = pino({ level: 'silent' })
  const d = await createTarget({ name: 'd', type: 'directory', path: '/tmp/x' } as never, { log, dataDir: '/tmp' })
  t.equal(d.type, 'directory')
  await t.rejects(createTarget({ name: 'z', type: 'zfs' } as never, { log, dataDir: '/tmp' }), /unknown type/)
  // The glance module is reached and validates its own fields (this config lacks them).
  const err = await createTarget({ name: 'g', type: 'glance', bogusField: 1 } as never, { log, dataDir: '/tmp', env: {} }).then(() => undefined, (e: Error) => e)
  t.ok(err !== undefined && !/not available/.test(err.message), `glance validates its config: ${err?.message ?? 'accepted'}`)
})

t.test('policy', async (t) => {
  const base = resolveConfig(minimal, 'a.yaml').policy
  t.equal(decide(base, 'cat', entry(), false).verdict, 'approved')
  t.equal(decide({ ...base, deny: [{ os: 'windows*' }] }, 'cat', entry({ os: 'windows-2022' }), false).verdict, 'rejected')
  t.equal(decide({ ...base, deny: [{ id: 'ubuntu-*', arch: 'aarch64' }] }, 'cat', entry(), false).verdict, 'approved', 'all fields of a rule must match')
  t.equal(decide({ ...base, allow: [{ catalogue: 'other' }] }, 'cat', entry(), false).verdict, 'rejected')
  t.equal(decide({ ...base, allow: [{ diskFormat: 'qcow2', maxSize: 2000 }] }, 'cat', entry(), false).verdict, 'approved')
  t.equal(decide({ ...base, maxSize: 999 }, 'cat', entry(), false).verdict, 'rejected')
  t.equal(decide({ ...base, approval: 'manual' }, 'cat', entry(), false).verdict, 'awaiting-approval')
  t.equal(decide({ ...base, approval: 'manual' }, 'cat', entry(), true).verdict, 'approved')
  t.equal(decide({ ...base, approval: 'manual', deny: [{ name: '*24.04' }] }, 'cat', entry(), true).verdict, 'rejected', 'deny beats an operator approval')
  t.ok(globToRegExp('a.b*').test('a.bcd'))
  t.notOk(globToRegExp('a.b*').test('axbcd'), 'dots are literal')
  t.notOk(retireDue({ ...base, retireGraceMs: 1000 }, 0, 999))
  t.ok(retireDue({ ...base, retireGraceMs: 1000 }, 0, 1000))
})

t.test('cache eviction is LRU and never touches busy images', async (t) => {
  const items = [
    { key: 'old', size: 40, lastUsed: 1, busy: false },
    { key: 'busy', size: 40, lastUsed: 0, busy: true },
    { key: 'new', size: 40, lastUsed: 9, busy: false }
  ]
  t.same(chooseEvictions(items, 100), ['old'])
  t.same(chooseEvictions(items, 40), ['old', 'new'])
  t.same(chooseEvictions(items, 1000), [])
})

t.test('backoff grows, is capped and jittered', async (t) => {
  t.equal(backoffMs(1, 1000, 60_000, () => 0.5), 1000)
  t.equal(backoffMs(3, 1000, 60_000, () => 0.5), 4000)
  t.equal(backoffMs(30, 1000, 60_000, () => 0.5), 60_000)
  t.equal(backoffMs(1, 1000, 60_000, () => 0), 800)
})

t.test('directory target: atomic register, adopt, retire', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-dirtarget-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const src = join(dir, 'src.img')
  const body = Buffer.from('verified bytes')
  await writeFile(src, body)
  const sha512 = createHash('sha512').update(body).digest('hex')
  const target = createDirectoryTarget({ name: 'd', type: 'directory', path: join(dir, 'out') })
  const img = { catalogue: 'cat', indexVersion: 3, entry: entry({ sha512, size: body.length }), endorsers: ['k1'] }
  t.equal(await target.find(img), undefined)
  const reg = await target.register({ ...img, filePath: src })
  t.equal(reg.ref, join(dir, 'out', 'ubuntu-24.04.img'))
  t.same(await readFile(reg.ref), body)
  const side = JSON.parse(await readFile(join(dir, 'out', 'ubuntu-24.04.json'), 'utf8')) as Record<string, unknown>
  t.match(side, { catalogue: 'cat', catalogueVersion: 3, id: 'ubuntu-24.04', sha512, endorsers: ['k1'], diskFormat: 'qcow2' })
  t.ok(typeof side.verifiedAt === 'string')
  t.same(await target.find(img), { ref: reg.ref, adopted: true }, 'an existing file with the same sha512 is adopted')
  t.equal(await target.find({ ...img, entry: entry({ sha512: 'c'.repeat(128) }) }), undefined, 'another sha512 is not adopted')
  await writeFile(join(dir, 'out', '.tmp-left-over.img'), 'x')
  await target.recover?.()
  t.same((await readdir(join(dir, 'out'))).sort(), ['ubuntu-24.04.img', 'ubuntu-24.04.json'], 'recover removes half-written files')
  await target.retire(img, { ref: '/elsewhere', adopted: false }, 'delete')
  t.ok((await readdir(join(dir, 'out'))).includes('ubuntu-24.04.img'), 'never touches what it did not register')
  await target.retire(img, reg, 'keep')
  t.ok((await readdir(join(dir, 'out'))).includes('ubuntu-24.04.img'))
  await target.retire(img, reg, 'deactivate')
  t.same((await readdir(join(dir, 'out'))).sort(), ['ubuntu-24.04.img.retired', 'ubuntu-24.04.json'])
  t.equal(await target.find(img), undefined, 'a retired image is not adopted')
  const listing = async (): Promise<string[]> => (await readdir(join(dir, 'out'))).sort()
  const retiredRef = `${reg.ref}.retired`
  t.same(await target.find({ ...img, indexVersion: 4, retiredRef }), { ref: reg.ref, adopted: false }, 'listed again: what it retired is moved back')
  t.same(await readFile(reg.ref), body)
  const back = JSON.parse(await readFile(join(dir, 'out', 'ubuntu-24.04.json'), 'utf8')) as Record<string, unknown>
  t.match(back, { catalogueVersion: 4, verifiedAt: side.verifiedAt }, 'the sidecar is of the index that lists it again, verified when it was')
  t.notOk('retired' in back, 'and no longer says retired')
  t.same(await listing(), ['ubuntu-24.04.img', 'ubuntu-24.04.json'])
  await target.retire(img, reg, 'hide')
  await writeFile(retiredRef, 'truncated')
  t.equal(await target.find({ ...img, retiredRef }), undefined, 'a retired file of another size is not moved back')
  await target.register({ ...img, filePath: src })
  t.same(await listing(), ['ubuntu-24.04.img', 'ubuntu-24.04.json'], 'registering anew removes what it had retired')
  await target.retire(img, reg, 'delete')
  t.same(await listing(), [])
})

t.test('directory target: a directory it cannot write fails at start-up, named in the status, and a fix shows', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-dirtarget-bad-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  // a regular file where the directory should be: ENOTDIR, which root cannot override
  // (the EROFS of a systemd sandbox and its ReadWritePaths= hint: test/deploy-systemd-pid1.test.ts)
  await writeFile(join(dir, 'blocked'), 'x')
  const target = createDirectoryTarget({ name: 'd', type: 'directory', path: join(dir, 'blocked', 'images') })
  await t.rejects(async () => { await target.recover?.() }, { code: 'IO_ERROR', message: /directory target d: cannot write in .*blocked\/images/ }, 'recover() proves the directory writable')
  const bad = target.status?.() as { lastError?: { code: string, at: string }, lastOkAt?: string }
  t.equal(bad.lastError?.code, 'IO_ERROR', 'the status names the error')
  t.equal(bad.lastOkAt, undefined)
  const view = (s: object): Parameters<typeof formatStatus>[0] => ({
    site: 's', agentVersion: '1', paused: false, startedAt: 'x', torrentPort: 1, peers: 0, downRate: 0, upRate: 0, images: {}, catalogues: [],
    targets: [{ name: 'd', type: 'directory', ...s }]
  }) as unknown as Parameters<typeof formatStatus>[0]
  t.match(formatStatus(view(bad)), /IO_ERROR: directory target d: cannot write/, '`imgdist-agent status` shows it')
  t.notMatch(formatStatus(view(bad)), /ok since/)

  await rm(join(dir, 'blocked'))
  await new Promise((resolve) => setTimeout(resolve, 5)) // so that the success is later than the failure
  await target.recover?.()
  const fixed = target.status?.() as { lastError?: { at: string }, lastOkAt?: string }
  t.ok(fixed.lastOkAt !== undefined && fixed.lastOkAt > (fixed.lastError?.at ?? ''), 'after the fix the target records a later success')
  t.match(formatStatus(view(fixed)), /IO_ERROR: .*; ok since /, 'and the status says the error is behind it')
  t.same(await readdir(join(dir, 'blocked', 'images')), [], 'recover() made the directory and left no probe behind')
})

t.test('verifier: size and sha512 against the signed entry', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-verify-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const p = join(dir, 'f')
  await writeFile(p, 'hello')
  const sha512 = createHash('sha512').update('hello').digest('hex')
  await verifyImageFile(p, entry({ sha512, size: 5 }))
  await t.rejects(verifyImageFile(p, entry({ sha512, size: 6 })), { code: 'HASH_MISMATCH' })
  await t.rejects(verifyImageFile(p, entry({ sha512: 'f'.repeat(128), size: 5 })), { code: 'HASH_MISMATCH' })
  await t.rejects(verifyImageFile(join(dir, 'missing'), entry()), { code: 'IO_ERROR' })
  // a file on disk is hashed by the sha512 worker thread; a stopped job stops it
  const stopped = new AbortController()
  stopped.abort()
  await t.rejects(verifyImageFile(p, entry({ sha512, size: 5 }), stopped.signal), { code: 'ABORTED' })
})

t.test('verify: a precomputed sha512 that fails at once surfaces as the error, never as an unhandled rejection', async (t) => {
  // Seen: the sha512 worker failing to start (EACCES) while verify awaited its stat ended the agent.
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-verify-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const p = join(dir, 'f')
  await writeFile(p, 'hello')
  const sha512 = createHash('sha512').update('hello').digest('hex')
  const failing = async (): Promise<string> => { throw Object.assign(new Error('sha512 worker: EACCES'), { code: 'INTERNAL' }) }
  await t.rejects(verifyImageFile(p, entry({ sha512, size: 5 }), undefined, failing()), { code: 'INTERNAL' }, 'the worker\'s error is verify\'s')
  await t.rejects(verifyImageFile(p, entry({ sha512, size: 6 }), undefined, failing()), { code: 'HASH_MISMATCH' }, 'a size mismatch comes first; the worker\'s error is then never awaited')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('reports and tables', async (t) => {
  t.equal(reportUrl('http://idx:8080'), 'http://idx:8080/v1/reports')
  t.equal(reportUrl('http://idx:8080/v1/reports'), 'http://idx:8080/v1/reports')
  const r = buildReport('site-a', '0.1.0', [{ name: 'cat', url: 'u', rootVersion: 1, indexVersion: 2, pollErrors: 0, watching: false, lastPoll: new Date().toISOString() }], [], new Date())
  t.match(r, { type: 'report', site: 'site-a', catalogues: [{ name: 'cat', rootVersion: 1, indexVersion: 2 }] })
  t.match(table(['A', 'BB'], [['xxx', 'y']]), /^A    BB\nxxx  y\n$/)
  t.match(formatImages([]), /no images/)
})

t.test('status: when each catalogue goes out of force, ahead or EXPIRED, in the units the fleet page uses', async (t) => {
  const now = new Date('2026-11-22T10:00:00Z')
  const at = (ms: number): string => new Date(now.getTime() + ms).toISOString().replace('.000Z', 'Z')
  const cat = (name: string, expires?: string): Parameters<typeof formatStatus>[0]['catalogues'][number] =>
    ({ name, url: 'u', rootVersion: 1, indexVersion: 2, pollErrors: 0, watching: true, ...(expires !== undefined ? { expires } : {}) })
  const out = formatStatus({
    site: 's', agentVersion: '1', paused: false, startedAt: 'x', torrentPort: 1, peers: 0, webSeeds: 0, downRate: 0, upRate: 0, images: {}, targets: [],
    catalogues: [cat('far', '2026-12-05T10:00:00Z'), cat('soon', at(36 * 3600_000 + 59_000)), cat('now', at(89_000)), cat('gone', '2026-11-22T08:00:00Z'), cat('none')]
  }, now)
  t.match(out, /\nCATALOGUE +ROOT +INDEX +WATCH +EXPIRES +LAST POLL/)
  t.match(out, /\nfar +v1 +v2 +yes +2026-12-05T10:00:00Z \(in 13d\) /)
  t.match(out, /\nsoon +v1 +v2 +yes +2026-11-23T22:00:59Z \(in 36h\) /, 'never rounded up: 36h 59s is "in 36h"')
  t.match(out, /\nnow +v1 +v2 +yes +2026-11-22T10:01:29Z \(in 89s\) /)
  t.match(out, /\ngone +v1 +v2 +yes +EXPIRED 2h ago \(2026-11-22T08:00:00Z\) /)
  t.match(out, /\nnone +v1 +v2 +yes +- /, 'none accepted yet')
})

t.test('deploy/agent.example.yaml is a valid config', async (t) => {
  const c = resolveConfig(await readFile('deploy/agent.example.yaml', 'utf8'), '/etc/imgdist/agent.yaml')
  t.equal(c.site, 'cern-prod')
  t.equal(c.report?.intervalMs, 60_000)
  t.equal(c.targets[0]?.type, 'directory')
})

t.test('imgdist-agent --help describes every command and option; a usage error prints one line and the synopsis', async (t) => {
  const help = spawnSync(process.execPath, [AGENT_BIN, '--help'], { encoding: 'utf8' })
  t.equal(help.status, 0, '--help exits 0')
  for (const word of ['run', 'status', 'images', 'peers', 'approve ID', 'retry ID', 'pause', 'resume', '--config FILE', '--api URL', '--json', 'IMGDIST_AGENT_API', 'SIGHUP', 'EXIT STATUS']) {
    t.ok(help.stdout.includes(word), `--help mentions ${word}`)
  }
  const bad = spawnSync(process.execPath, [AGENT_BIN, 'bogus'], { encoding: 'utf8' })
  t.equal(bad.status, 2, 'a usage error exits 2')
  const lines = bad.stderr.split('\n')
  t.equal(lines[0], 'imgdist-agent: USAGE: unknown command "bogus"')
  t.match(lines[1], /^usage: imgdist-agent run --config FILE/, 'then the synopsis')
  t.notOk(bad.stderr.includes('DESCRIPTION'), 'not the whole manual')
  for (const argv of [['run', '--help'], ['status', '-h'], ['approve', 'x', '--help']]) {
    const sub = spawnSync(process.execPath, [AGENT_BIN, ...argv], { encoding: 'utf8' })
    t.equal(sub.status, 0, `${argv.join(' ')} exits 0`)
    t.match(sub.stdout, /SYNOPSIS[\s\S]*EXIT STATUS/, `${argv.join(' ')} prints the manual`)
  }
  const version = spawnSync(process.execPath, [AGENT_BIN, '--version'], { encoding: 'utf8' })
  t.equal(version.status, 0)
  t.match(version.stdout, /^imgdist-agent \d+\.\d+\.\d+\n$/, '--version prints the version')
})

t.test('imgdist-agent run with a config that does not validate exits 2, as --help says', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-badcfg-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'agent.yaml')
  await writeFile(path, 'site: x\npolicy: { approval: manualy }\n')
  const r = spawnSync(process.execPath, [AGENT_BIN, 'run', '--config', path], { encoding: 'utf8' })
  t.equal(r.status, 2, 'exit 2')
  t.match(r.stderr, /^imgdist-agent: CONFIG_INVALID: /, 'one line naming the code')
  // a duration of 0 is named with the other bad fields, in the one line
  await writeFile(path, minimal.replace('site-a', 'Site A') + 'policy: { retireGrace: 0d }\n')
  const zero = spawnSync(process.execPath, [AGENT_BIN, 'run', '--config', path], { encoding: 'utf8' })
  t.equal(zero.status, 2, 'exit 2')
  t.match(zero.stderr, /^imgdist-agent: CONFIG_INVALID: agent config .* is invalid: .*site: .*policy\.retireGrace: "0d" is not valid: how long to wait before retiring an image: "0" \(at once\) or a duration/)
  t.equal(zero.stderr.trim().split('\n').length, 1, 'one line')
  const missing = spawnSync(process.execPath, [AGENT_BIN, 'run', '--config', join(dir, 'nope.yaml')], { encoding: 'utf8' })
  t.equal(missing.status, 2, 'a config that cannot be read: exit 2 too')
})
