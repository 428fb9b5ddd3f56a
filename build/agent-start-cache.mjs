// The agent's and the index server's code caches, made from a real download rather than from
// `--help`.
//
// V8's code cache holds the functions a run compiled. `--help` only loads the modules; an
// agent then compiles, lazily and from source, everything it calls: config validation, LevelDB,
// the swarm, fastify's routes, the poller, undici's connect, and at its first image the
// catalogue's checks, the tracker client, the peer wire, the sha512 worker's feed and the
// target. A cache written after a real start holds the start (2.1 MB against 1.3 MB from
// `--help`: a start costs about a fifth less CPU, bench/HISTORY.md, session 25); one written after
// a download as well holds the rest (2.5 MB: about 50 ms less CPU per agent for a 16 MiB image,
// session 26). That matters where agents start and download together on few cores, as in
// bench:swarm's cold row, where seven do on two, and in its warm row, where the download path
// is compiled at the moment of publication.
//
// Everything stays on loopback: a throw-away root and index made by imgdist-sign, an index server
// and an agent on ports chosen by the kernel (port 0), no DHT, no LSD, a 2 MiB image. Each
// program is stopped with SIGTERM; bin-loader.cjs writes its cache at exit. Any failure leaves
// the `--help` cache of a program that did not exit cleanly and says so.
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const TIME_LIMIT_MS = 60_000

/**
 * Rewrites dist/bin's agent and index caches from an agent that downloads and registers one image
 * from an index server; returns why not, or undefined.
 */
export async function writeAgentStartCache (binDir) {
  const dir = mkdtempSync(join(tmpdir(), 'imgdist-cache-'))
  const sign = signer(binDir, dir)
  let index
  try {
    makeRoot(binDir, dir)
    writeFileSync(join(dir, 'image.img'), randomBytes(2 << 20))
    sign('add', 'image.img', '--index', 'index.yaml', '--id', 'cache-image', '--version', '1', '--disk-format', 'raw', '--root', 'root.yaml', '--torrent-dir', 'torrents')
    sign('sign', '--index', 'index.yaml', '--key', 'root.key')
    execFileSync(process.execPath, [join(binDir, 'imgdist-index.js'), 'init', '--data-dir', join(dir, 'index'), '--root', join(dir, 'root.yaml')], { stdio: 'ignore' })
    writeFileSync(join(dir, 'index-config.yaml'), [
      `dataDir: ${JSON.stringify(join(dir, 'index'))}`,
      'listen: "127.0.0.1:0"',
      'seeding: { dht: false, utp: false, torrentPort: 0 }',
      'torrents: { injectTracker: true, injectWebSeed: false }',
      ''
    ].join('\n'))
    index = startProgram(join(binDir, 'imgdist-index.js'), ['serve', '--config', join(dir, 'index-config.yaml')], 'imgdist-index serving')
    const url = (await index.ready).url
    sign('publish', '--server', url, '--index', 'index.yaml', '--image', 'cache-image=image.img', '--torrent-dir', 'torrents')
    writeFileSync(join(dir, 'agent.yaml'), agentConfig(dir, `${url}/v1/index.yaml`))
    const agent = startProgram(join(binDir, 'imgdist-agent.js'), ['run', '--config', join(dir, 'agent.yaml')], 'registered')
    await agent.ready
    return await agent.stop('the agent')
  } catch (err) {
    return err.message
  } finally {
    const why = await index?.stop('the index server')
    if (why !== undefined) process.stderr.write(`bundle: the index server's code cache covers --help only: ${why}\n`)
    rmSync(dir, { recursive: true, force: true })
  }
}

function signer (binDir, dir) {
  return (...args) => execFileSync(process.execPath, [join(binDir, 'imgdist-sign.js'), ...args], { cwd: dir, stdio: 'ignore' })
}

/** `dir/root.yaml`, signed by `dir/root.key`, which is also its only index key. */
export function makeRoot (binDir, dir) {
  const sign = signer(binDir, dir)
  sign('keygen', '--out', 'root')
  sign('init-root', '--name', 'cache', '--root-key', 'root.pub', '--index-key', 'root.pub', '--out', 'root.yaml')
  sign('sign-root', '--key', 'root.key', 'root.yaml')
}

/** An agent config on loopback with ports chosen by the kernel; `url` may refuse (a start only). */
export function agentConfig (dir, url) {
  return [
    'site: code-cache',
    `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
    'api: { listen: "127.0.0.1:0" }',
    'swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false }',
    `subscriptions: [{ name: cache, url: ${JSON.stringify(url)}, root: ${JSON.stringify(join(dir, 'root.yaml'))} }]`,
    `targets: [{ name: dir, type: directory, path: ${JSON.stringify(join(dir, 'images'))} }]`,
    'logLevel: info',
    ''
  ].join('\n')
}

/**
 * One of the programs with IMGDIST_WRITE_CODE_CACHE=1. `ready` resolves with the JSON log line
 * whose msg is `readyMsg` (rejects if it exits first or takes over TIME_LIMIT_MS); `stop(what)`
 * sends SIGTERM and resolves undefined on a clean exit, else why not.
 */
export function startProgram (launcher, args, readyMsg) {
  const child = spawn(process.execPath, [launcher, ...args], { env: { ...process.env, IMGDIST_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let pending = ''
  const timer = setTimeout(() => { child.kill('SIGKILL') }, TIME_LIMIT_MS)
  const exited = new Promise((resolve) => {
    child.on('error', (err) => { resolve(err.message) })
    child.on('close', (code, signal) => { clearTimeout(timer); resolve(code === 0 ? undefined : `exited with ${code ?? signal}`) })
  })
  const ready = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      out = (out + chunk).slice(-16 * 1024)
      const lines = (pending + chunk).split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) {
        try { const rec = JSON.parse(line); if (rec.msg === readyMsg) resolve(rec) } catch {}
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    void exited.then((why) => { reject(new Error(`${launcher} never logged "${readyMsg}" (${why ?? 'exited with 0'}): ${tail(out)}`)) })
  })
  ready.catch(() => {})
  return {
    ready,
    stop: async (what) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const why = await exited
      return why === undefined ? undefined : `${what} ${why}: ${tail(out)}`
    }
  }
}

function tail (out) { return out.trim().split('\n').slice(-3).join(' | ') }
