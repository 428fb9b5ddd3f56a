// The agent's code cache, made from a real start rather than from `--help`.
//
// V8's code cache holds the functions a run compiled. `--help` only loads the modules; an
// agent's start then compiles, lazily and from source, everything it calls: config validation,
// LevelDB, the swarm, fastify's routes, the poller, undici's connect. A cache written after a
// real start holds those too (2.1 MB against 1.3 MB), and a start then costs about a fifth less
// CPU (bench/README.md, session 25). That matters where agents start together on few cores, as in
// bench:swarm's cold row, where seven start on two.
//
// The start is a real one on loopback only: a throw-away root made by imgdist-sign, an API and a
// torrent port chosen by the kernel (port 0), a catalogue URL that refuses the connection, so
// nothing leaves the machine. Stopped with SIGTERM once it logs that it started; bin-loader.cjs
// writes the cache at exit. Any failure leaves the `--help` cache in place and says so.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const STARTED = 'imgdist-agent started'
const TIME_LIMIT_MS = 30_000

/** Rewrites dist/bin/imgdist-agent.v8-cache from a start of the agent; returns why not, or undefined. */
export async function writeAgentStartCache (binDir) {
  const dir = mkdtempSync(join(tmpdir(), 'imgdist-cache-'))
  try {
    const sign = (...args) => execFileSync(process.execPath, [join(binDir, 'imgdist-sign.js'), ...args], { cwd: dir, stdio: 'ignore' })
    sign('keygen', '--out', 'root')
    sign('init-root', '--name', 'cache', '--root-key', 'root.pub', '--index-key', 'root.pub', '--out', 'root.yaml')
    sign('sign-root', '--key', 'root.key', 'root.yaml')
    writeFileSync(join(dir, 'agent.yaml'), [
      'site: code-cache',
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      'api: { listen: "127.0.0.1:0" }',
      'swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false }',
      `subscriptions: [{ name: cache, url: "http://127.0.0.1:9/v1/", root: ${JSON.stringify(join(dir, 'root.yaml'))} }]`,
      `targets: [{ name: dir, type: directory, path: ${JSON.stringify(join(dir, 'images'))} }]`,
      'logLevel: info',
      ''
    ].join('\n'))
    return await startAndStop(join(binDir, 'imgdist-agent.js'), join(dir, 'agent.yaml'))
  } catch (err) {
    return err.message
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function startAndStop (launcher, config) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [launcher, 'run', '--config', config], {
      env: { ...process.env, IMGDIST_WRITE_CODE_CACHE: '1' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let started = false
    const timer = setTimeout(() => { child.kill('SIGKILL') }, TIME_LIMIT_MS)
    const onData = (chunk) => {
      out = (out + chunk).slice(-16 * 1024)
      if (!started && out.includes(STARTED)) { started = true; child.kill('SIGTERM') }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('error', (err) => { clearTimeout(timer); resolve(err.message) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (started && code === 0) resolve(undefined)
      else resolve(`the agent ${started ? `exited with ${code ?? signal}` : 'never logged that it started'}: ${out.trim().split('\n').slice(-3).join(' | ')}`)
    })
  })
}
