import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { stringify } from 'yaml'
import { makeBenchImage } from '../bench/fixture.js'
import { originTestbed, startSeeder } from './helpers/agent-origin.js'
import { AGENT_BIN, imagesOf, startAgent, waitFor } from './helpers/agent-proc.js'
import { freePort } from './helpers/free-port.js'

// The systemd units in deploy/ as systemd reads them, without starting them (under a real
// systemd as PID 1: deploy-systemd-pid1.test.ts). `systemd-analyze verify` parses each unit, and
// each program, run under strace through a real download, makes no system call that its unit's
// SystemCallFilter denies. strace sees names only, not RestrictAddressFamilies=. (It found that
// V8 calls pkey_alloc at start-up, which @system-service leaves out: the agent's unit, with no
// SystemCallErrorNumber= then, would have killed it with SIGSYS before its first log line.)

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const UNITS = ['imgdist-agent', 'imgdist-index']

const missing = ['systemd-analyze', 'strace'].filter((c) => !have(c))
if (missing.length > 0) t.comment(`SKIPPING the systemd unit checks: ${missing.join(' and ')} missing (test/setup/install-tools.sh installs them)`)
const skip = missing.length > 0 ? `${missing.join(' and ')} missing` : false

t.test('systemd-analyze verify accepts both units', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-units-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  for (const name of UNITS) {
    // ExecStart must name an executable that exists: the built one stands in for /usr/bin's
    const text = (await readFile(`deploy/${name}.service`, 'utf8')).replaceAll(`/usr/bin/${name} `, `${resolve('dist/bin', `${name}.js`)} `)
    const path = join(dir, `${name}.service`)
    await writeFile(path, text)
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' })
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(name))
    t.equal(r.status, 0, `${name}.service: systemd-analyze verify exits 0`)
    t.same(ours, [], `${name}.service: no warnings about it`)
  }
})

/** Every group of `systemd-analyze syscall-filter`, nested groups expanded. */
function syscallGroups (): (group: string) => Set<string> {
  const raw = new Map<string, string[]>()
  let cur: string[] | undefined
  for (const line of spawnSync('systemd-analyze', ['syscall-filter'], { encoding: 'utf8' }).stdout.split('\n')) {
    if (line.startsWith('@')) { cur = []; raw.set(line.trim(), cur); continue }
    const item = line.trim()
    if (line.startsWith(' ') && item !== '' && !item.startsWith('#')) cur?.push(item)
    if (!line.startsWith(' ') && item !== '') cur = undefined // "# Unlisted system calls…" and the like
  }
  const expand = (g: string, seen = new Set<string>()): Set<string> => {
    const out = new Set<string>()
    if (seen.has(g)) return out
    seen.add(g)
    for (const item of raw.get(g) ?? []) for (const s of item.startsWith('@') ? expand(item, seen) : [item]) out.add(s)
    return out
  }
  return (g) => expand(g)
}

/** What the unit's SystemCallFilter= lines allow: the allow lists, less the ~ deny lists. */
function allowedBy (unit: string, group: (g: string) => Set<string>): Set<string> {
  const allow = new Set<string>()
  const deny = new Set<string>()
  for (const m of unit.matchAll(/^SystemCallFilter=(~?)(.*)$/gm)) {
    for (const item of (m[2] as string).trim().split(/\s+/)) {
      for (const s of item.startsWith('@') ? group(item) : [item]) (m[1] === '~' ? deny : allow).add(s)
    }
  }
  return new Set([...allow].filter((s) => !deny.has(s)))
}

/** The system calls named in a `strace -c` summary. */
async function syscallsIn (summary: string): Promise<string[]> {
  return (await readFile(summary, 'utf8')).split('\n')
    .map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 5 && /^\d/.test(f[0] as string) && f.at(-1) !== 'total').map((f) => f.at(-1) as string)
}

/**
 * The pid of the program strace runs: the child of strace that is node running `program`. Not
 * just strace's first child: strace first forks a short-lived one of its own to test
 * PTRACE_SEIZE, whose command line is strace's own (and so names `program` too).
 */
async function tracee (stracePid: number, program: string): Promise<number> {
  return await waitFor(`strace started ${program}`, async () => {
    const kids = (await readFile(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8')).trim().split(/\s+/).filter((k) => k !== '')
    for (const k of kids) {
      const cmdline = await readFile(`/proc/${k}/cmdline`, 'utf8').catch(() => '')
      const argv = cmdline.split('\0')
      if (argv[0] === process.execPath && argv.includes(program)) return Number(k)
    }
    return undefined
  })
}

t.test('the agent, through a real download and shutdown, makes only the system calls its unit allows', { skip }, async (t) => {
  const allowed = allowedBy(await readFile('deploy/imgdist-agent.service', 'utf8'), syscallGroups())
  t.ok(allowed.has('read') && allowed.has('prlimit64') && allowed.has('pkey_alloc') && !allowed.has('setrlimit') && !allowed.has('mount'), 'the filter as parsed: @system-service and @pkey, less @privileged and @resources')

  const { dir, fx, origin } = await originTestbed(t, 'imgdist-seccomp-')
  const entry = await fx.addImage('alpine-3.20', 2 * 1024 * 1024, { pieceLength: 64 * 1024, announce: [origin.announce] })
  const seeder = await startSeeder(fx, ['alpine-3.20'])
  t.teardown(seeder.close)
  const summary = join(dir, 'strace.txt')
  const a = await startAgent(join(dir, 'site'), 'site-s', { subscriptions: [{ url: origin.indexUrl, root: fx.rootPath, pollInterval: '2s' }] }, undefined,
    ['strace', '-f', '-qq', '-c', '-o', summary])
  const pid = await tracee(a.proc.pid as number, AGENT_BIN)
  t.teardown(async () => { try { process.kill(pid, 'SIGKILL') } catch {} await a.stop('SIGKILL') })
  await waitFor('registered', async () => (await imagesOf(a)).find((i) => i.id === entry.id && i.state === 'registered'), 120_000)
  await a.get('/metrics').catch(() => undefined) // prom-client's text, as a scraper asks
  // SIGTERM to the agent itself, as systemd's KillSignal would: it drains and exits, and strace with it
  process.kill(pid, 'SIGTERM')
  t.equal(await a.exited, 0, 'strace ended with the agent, which exited 0')

  const used = await syscallsIn(summary)
  t.ok(['openat', 'connect', 'write'].every((s) => used.includes(s)), `strace counted the agent's files and sockets (${used.length} distinct system calls)`)
  t.same(used.filter((s) => !allowed.has(s)), [], 'none outside the unit\'s SystemCallFilter')
})

t.test('the index server, through publishing, seeding a download, its pages and shutdown, makes only the system calls its unit allows', { skip }, async (t) => {
  const allowed = allowedBy(await readFile('deploy/imgdist-index.service', 'utf8'), syscallGroups())
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-seccomp-index-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const bin = resolve('dist/bin/imgdist-index.js')
  const [port, torrentPort] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${port}`
  const image = await makeBenchImage({ dir: join(dir, 'catalogue'), id: 'alpine-3.20', size: 2 * 1024 * 1024, pieceLength: 64 * 1024, announce: [`${url}/announce`] })
  const dataDir = join(dir, 'index-data')
  execFileSync(process.execPath, [bin, 'init', '--data-dir', dataDir, '--root', image.rootPath])
  const cfgPath = join(dir, 'index.yaml')
  await writeFile(cfgPath, stringify({
    dataDir, listen: `127.0.0.1:${port}`, publicUrl: url, logLevel: 'info',
    seeding: { enabled: true, dht: false, torrentPort, rescanInterval: '1m' },
    torrents: { injectTracker: true, injectWebSeed: true }
  }))
  const summary = join(dir, 'strace.txt')
  const serverLog = join(dir, 'server.log')
  const logFd = openSync(serverLog, 'w')
  const strace = spawn('strace', ['-f', '-qq', '-c', '-o', summary, process.execPath, bin, 'serve', '--config', cfgPath], { stdio: ['ignore', logFd, logFd] })
  closeSync(logFd)
  t.teardown(async () => { if (t.passing() === false) t.comment(`the server's log:\n${await readFile(serverLog, 'utf8').catch(() => '')}`) })
  const exited = new Promise<number | null>((resolve) => { strace.once('exit', (code) => { resolve(code) }) })
  const pid = await tracee(strace.pid as number, bin)
  t.teardown(async () => { try { process.kill(pid, 'SIGKILL') } catch {} strace.kill('SIGKILL') })
  const get = async (path: string, init: Parameters<typeof request>[1] = {}): Promise<{ status: number, text: string }> => {
    const r = await request(`${url}${path}`, init)
    return { status: r.statusCode, text: await r.body.text() }
  }
  await waitFor('index server up', async () => (await get('/healthz').catch(() => undefined))?.status === 200 ? true : undefined)
  const put = await get('/v1/index.yaml', { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: await readFile(image.indexPath) })
  t.equal(put.status, 200, `the signed index is published (${put.text.slice(0, 80)})`)
  execFileSync(process.execPath, [bin, 'import', '--data-dir', dataDir, '--id', image.id, '--torrent', image.torrentPath, image.path])
  process.kill(pid, 'SIGHUP') // rescan: seed the imported image now
  await waitFor('seeding', async () => /^imgdist_index_torrents_seeded\s+1\b/m.test((await get('/metrics')).text) ? true : undefined, 60_000)

  const a = await startAgent(join(dir, 'site'), 'site-i', { subscriptions: [{ url: `${url}/v1/index.yaml`, root: image.rootPath, pollInterval: '2s' }] })
  t.teardown(async () => { await a.stop('SIGKILL') })
  await waitFor('registered', async () => (await imagesOf(a)).find((i) => i.id === image.id && i.state === 'registered'), 120_000)
  t.equal((await get('/')).status, 200, 'the fleet page')
  t.equal((await get(`/v1/images/${image.id}`, { headers: { range: 'bytes=0-99' } })).status, 206, 'a web seed range')
  await a.stop('SIGTERM')
  // SIGTERM to the server itself, as systemd's KillSignal would: it drains and exits, and strace with it
  process.kill(pid, 'SIGTERM')
  t.equal(await exited, 0, 'strace ended with the server, which exited 0')

  const used = await syscallsIn(summary)
  t.ok(['openat', 'accept4', 'write'].every((s) => used.includes(s)), `strace counted the server's files and sockets (${used.length} distinct system calls)`)
  t.same(used.filter((s) => !allowed.has(s)), [], 'none outside the unit\'s SystemCallFilter')
})
