import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { stringify } from 'yaml'
import { bytes, table } from '../agent/format.js'
import { UsageError } from '../lib/errors.js'
import { buildRoot, editIndex, emptyIndex, upsertImage } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { ImageHasher } from '../lib/image-hasher.js'
import { encodePublicKey, encodeSecretKey, generateKeyPair } from '../lib/keys.js'
import type { ImageEntry } from '../lib/schema.js'
import { keyIdOf } from '../lib/keys.js'
import { buildTorrent } from '../lib/torrent-meta.js'
import { parseFlags } from './args.js'
import { DEMO_GLANCE_TARGET, demoTargetImage, glanceTargetConfig, openDemoGlance, type DemoGlance } from './demo-glance.js'

/**
 * `npm run demo`: the whole product on loopback, no root, no internet. Keys, a root, a 32 MiB
 * image, a signed catalogue, the real imgdist-index and three imgdist-agent processes with
 * directory targets; waits until every site has the image verified and prints the fleet.
 * `--glance-cloud NAME`: site-1 also registers the image in that cloud's Glance (docs/glance.md).
 */

const USAGE = `usage: npm run demo [-- --glance-cloud NAME]
  --glance-cloud NAME  site-1 also registers the image in the Glance of cloud NAME of clouds.yaml
                       (found as the openstack CLI finds it: $OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
                       ~/.config/openstack/, /etc/openstack/); see docs/glance.md
`

const IMAGE_SIZE = 32 * 1024 * 1024
const PIECE_LENGTH = 256 * 1024
const SITES = ['site-1', 'site-2', 'site-3']
// The origin can upload about one copy in 4 s: alone it would need 12 s for three sites, so sites share.
const ORIGIN_UPLOAD_LIMIT = 8 * 1024 * 1024
const DEADLINE_MS = 50_000
// a 32 MiB upload into Glance, which hashes it, on top
const GLANCE_EXTRA_MS = 40_000

const here = fileURLToPath(new URL('.', import.meta.url))
const INDEX_BIN = join(here, '..', 'bin', 'imgdist-index.js')
const AGENT_BIN = join(here, '..', 'bin', 'imgdist-agent.js')
const run = promisify(execFile)
const say = (s: string): void => { process.stdout.write(s + '\n') }

interface Proc { name: string, proc: ChildProcess, logs: string[], ready: Promise<Record<string, unknown>> }

function spawnLogged (name: string, args: string[], readyMsg: string): Proc {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = ''
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        logs.push(line)
        try { const j = JSON.parse(line) as Record<string, unknown>; if (j.msg === readyMsg) resolve(j) } catch {}
      }
    })
    proc.stderr?.on('data', (d: Buffer) => logs.push(d.toString()))
    proc.once('exit', (code) => { reject(new Error(`${name} exited with ${String(code)}:\n${logs.slice(-20).join('\n')}`)) })
  })
  ready.catch(() => {})
  return { name, proc, logs, ready }
}

async function stop (p: Proc): Promise<number | null> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return p.proc.exitCode
  const exited = new Promise<number | null>((resolve) => p.proc.once('exit', (code) => { resolve(code) }))
  p.proc.kill('SIGTERM')
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 10_000)
  const code = await exited
  clearTimeout(timer)
  return code
}

async function put (url: string, body: Buffer | NodeJS.ReadableStream, type: string, length?: number): Promise<void> {
  const res = await fetch(url, {
    method: 'PUT', body: body as unknown as BodyInit, headers: { 'content-type': type, ...(length !== undefined ? { 'content-length': String(length) } : {}) },
    ...({ duplex: 'half' } as Record<string, unknown>)
  })
  if (!res.ok) throw new Error(`PUT ${url}: HTTP ${res.status} ${await res.text()}`)
}

async function makeImage (path: string): Promise<{ sha512: string, size: number, pieces: Uint8Array }> {
  const h = new ImageHasher(PIECE_LENGTH)
  const out = createWriteStream(path)
  for (let off = 0; off < IMAGE_SIZE; off += 1024 * 1024) {
    const chunk = randomBytes(1024 * 1024)
    h.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => { resolve() }))
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => { if (err != null) reject(err); else resolve() }))
  return h.digest()
}

interface View {
  id: string
  state: string
  progress: number
  bytesFromPeers: number
  bytesFromWebSeeds: number
  bytesUploaded: number
  error?: { code: string, message: string }
  targets?: Record<string, { state: string, ref?: string, error?: { code: string, message: string } }>
}

async function main (): Promise<number> {
  const flags = parseFlags(process.argv.slice(2), { 'glance-cloud': '' }, USAGE)
  if (flags.help) { process.stdout.write(USAGE); return 0 }
  const glanceCloud = flags['glance-cloud'] === '' ? undefined : flags['glance-cloud']
  const started = Date.now()
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-demo-'))
  const procs: Proc[] = []
  let glance: DemoGlance | undefined
  try {
    say(`imgdist demo in ${dir}`)
    // the cloud is resolved before anything is built, so a wrong name fails at once
    if (glanceCloud !== undefined) glance = openDemoGlance(glanceCloud, process.env)
    // 1. The endorser: keys, root v1, image, torrent, signed catalogue.
    const rootKey = generateKeyPair()
    const indexKey = generateKeyPair()
    const root = addSignature(buildRoot({
      name: 'demo', expires: new Date(Date.now() + 365 * 86400_000),
      rootKeys: [encodePublicKey(rootKey.publicKey)], rootThreshold: 1,
      indexKeys: [encodePublicKey(indexKey.publicKey)], indexThreshold: 1
    }), rootKey)
    const rootPath = join(dir, 'root.yaml')
    await writeFile(rootPath, serializeDocument(root))
    const imagePath = join(dir, 'demo-linux.img')
    const h = await makeImage(imagePath)
    const tor = buildTorrent({ name: 'demo-linux', length: h.size, pieceLength: PIECE_LENGTH, pieces: h.pieces, createdBy: 'imgdist demo' })
    const entry: ImageEntry = {
      id: 'demo-linux', name: 'Demo Linux', version: '1.0', sha512: h.sha512, size: h.size, infoHash: tor.infoHash,
      torrent: `torrents/${tor.infoHash}.torrent`, diskFormat: 'raw', containerFormat: 'bare', minDisk: 1, minRam: 256,
      arch: 'x86_64', os: 'linux', properties: { os_distro: 'demo' }
    }
    const index = addSignature(editIndex(emptyIndex('demo', new Date(), new Date(Date.now() + 30 * 86400_000)), new Date(), (s) => upsertImage(s, entry)), indexKey)
    say(`signed catalogue "demo" v${index.signed.version}: ${entry.id} (${bytes(entry.size)}, sha512 ${entry.sha512.slice(0, 16)}…)`)
    const targetImg = demoTargetImage('demo', index.signed.version, entry, [keyIdOf(indexKey.publicKey)])
    if (glance !== undefined) {
      await glance.probe(targetImg)
      say(`Glance mode: site-1 also registers into cloud "${glanceCloud}" (${glance.describe()})`)
    }

    // 2. The index operator: install the root, register the sites' report keys, serve.
    const indexDir = join(dir, 'index')
    await run(process.execPath, [INDEX_BIN, 'init', '--data-dir', indexDir, '--root', rootPath])
    const siteKeys = new Map<string, string>()
    for (const site of SITES) {
      const k = generateKeyPair()
      await mkdir(join(dir, site), { recursive: true })
      const keyPath = join(dir, site, `${site}.key`)
      await writeFile(keyPath, encodeSecretKey(k.secretKey) + '\n', { mode: 0o600 })
      await writeFile(join(dir, site, `${site}.pub`), encodePublicKey(k.publicKey) + '\n')
      await run(process.execPath, [INDEX_BIN, 'sites', 'add', site, join(dir, site, `${site}.pub`), '--data-dir', indexDir])
      siteKeys.set(site, keyPath)
    }
    const indexCfg = join(dir, 'index.yaml.config')
    await writeFile(indexCfg, stringify({
      dataDir: indexDir, listen: '127.0.0.1:0', logLevel: 'info',
      seeding: { dht: false, utp: false, torrentPort: 0, uploadLimit: ORIGIN_UPLOAD_LIMIT, rescanInterval: '2s' },
      torrents: { injectTracker: true, injectWebSeed: false },
      fleet: { refresh: '2s' }
    }))
    const index$ = spawnLogged('imgdist-index', [INDEX_BIN, 'serve', '--config', indexCfg], 'imgdist-index serving')
    procs.push(index$)
    const url = (await index$.ready).url as string
    await put(`${url}/v1/index.yaml`, Buffer.from(serializeDocument(index)), 'application/yaml')
    await put(`${url}/v1/torrents/${tor.infoHash}.torrent`, Buffer.from(tor.bytes), 'application/x-bittorrent')
    await put(`${url}/v1/images/${entry.id}`, createReadStream(imagePath) as unknown as NodeJS.ReadableStream, 'application/octet-stream', (await stat(imagePath)).size)
    say(`index server at ${url} publishes it and seeds it (upload limited to ${bytes(ORIGIN_UPLOAD_LIMIT)}/s)`)

    // 3. Three sites.
    const agents: Array<{ site: string, api: string, dir: string }> = []
    for (const site of SITES) {
      const cfgPath = join(dir, site, 'agent.yaml')
      await writeFile(cfgPath, stringify({
        site, dataDir: join(dir, site, 'data'), api: { listen: '127.0.0.1:0' }, cache: { maxBytes: 1024 ** 3 },
        swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false, maxConcurrentDownloads: 2 },
        subscriptions: [{ name: 'demo', url: `${url}/v1/index.yaml`, root: rootPath, pollInterval: '2s' }],
        policy: { approval: 'auto', retire: 'deactivate' },
        targets: [
          { name: 'images', type: 'directory', path: join(dir, site, 'images') },
          ...(glance !== undefined && site === SITES[0] ? [glanceTargetConfig(glance.cloud)] : [])
        ],
        report: { url, siteKey: siteKeys.get(site), interval: '1s' },
        logLevel: 'info'
      }))
      const p = spawnLogged(site, [AGENT_BIN, 'run', '--config', cfgPath], 'imgdist-agent started')
      procs.push(p)
      agents.push({ site, api: '', dir: join(dir, site) })
    }
    for (const [i, a] of agents.entries()) a.api = ((await (procs[i + 1] as Proc).ready).api as string)
    say(`3 agents running (${agents.map((a) => a.site).join(', ')}), DHT off, tracker on\n`)

    // 4. Wait until every site has the image verified and registered.
    const views = new Map<string, View>()
    let lastPrinted = 0
    let lastLine = ''
    for (;;) {
      for (const a of agents) {
        const r = await fetch(`${a.api}/v1/images`).then(async (res) => await res.json() as { images: View[] }).catch(() => ({ images: [] }))
        const v = r.images.find((i) => i.id === entry.id)
        if (v !== undefined) views.set(a.site, v)
      }
      const line = agents.map((a) => {
        const v = views.get(a.site)
        return `${a.site} ${v?.state ?? '-'} ${((v?.progress ?? 0) * 100).toFixed(0)}%${v?.error !== undefined ? ` (${v.error.code})` : ''}`
      }).join('  ')
      // A terminal gets one live line; a log (CI, the test) gets a line every few seconds.
      if (process.stdout.isTTY) process.stdout.write(`\r${line}   `)
      else if (line !== lastLine && Date.now() - lastPrinted > 2000) { say(line); lastPrinted = Date.now(); lastLine = line }
      if (agents.every((a) => views.get(a.site)?.state === 'registered')) break
      if (Date.now() - started > DEADLINE_MS + (glance !== undefined ? GLANCE_EXTRA_MS : 0)) {
        const errs = [...views.entries()].filter(([, v]) => v.error !== undefined).map(([s, v]) => `${s}: ${v.error?.code ?? ''}: ${v.error?.message ?? ''}`)
        throw new Error(`not every site finished in time${errs.length > 0 ? `\n${errs.join('\n')}` : ''}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    say(process.stdout.isTTY ? '\n' : agents.map((a) => `${a.site} registered`).join('  ') + '\n')

    // 5. The fleet table: who got what from whom.
    const metrics = await fetch(`${url}/metrics`).then(async (r) => await r.text())
    const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0)
    const originBt = metric('imgdist_index_seed_uploaded_bytes')
    const originHttp = metric('imgdist_index_webseed_bytes_total')
    const rows = agents.map((a) => {
      const v = views.get(a.site) as View
      return [a.site, entry.id, v.state, bytes(v.bytesFromPeers), bytes(v.bytesFromWebSeeds), bytes(v.bytesUploaded)]
    })
    say(table(['SITE', 'IMAGE', 'STATE', 'FROM PEERS (BT)', 'FROM WEB SEED', 'UPLOADED TO PEERS'], rows))
    const delivered = [...views.values()].reduce((s, v) => s + v.bytesFromPeers + v.bytesFromWebSeeds, 0)
    const origin = originBt + originHttp
    const fromSites = Math.max(0, delivered - origin)
    say(`origin sent ${bytes(origin)} (BitTorrent ${bytes(originBt)}, HTTP ${bytes(originHttp)}) of ${bytes(delivered)} delivered;`)
    say(`${bytes(fromSites)} (${((fromSites / Math.max(1, delivered)) * 100).toFixed(0)}%) came from other sites.`)
    for (const a of agents) {
      const side = JSON.parse(await readFile(join(a.dir, 'images', `${entry.id}.json`), 'utf8')) as { sha512: string }
      if (side.sha512 !== entry.sha512) throw new Error(`${a.site}: sidecar sha512 differs`)
    }
    if (glance !== undefined) {
      const ref = views.get(SITES[0] as string)?.targets?.[DEMO_GLANCE_TARGET]?.ref
      if (ref === undefined) throw new Error('site-1 did not record a Glance image id')
      say(`site-1 registered it in Glance (cloud "${glance.cloud}"): ${await glance.check(targetImg, ref)}`)
    }
    const fleet = await fetch(`${url}/v1/fleet`).then(async (r) => await r.json() as { sites: Array<{ name: string }> }).catch(() => ({ sites: [] }))
    say(`the index server's fleet view has reports from ${fleet.sites.length} site(s): ${url}/`)
    say(`every site verified sha512 ${entry.sha512.slice(0, 16)}… in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    return 0
  } finally {
    // 6. Shut down: agents first, then the index server; each must drain and exit 0.
    const codes = await Promise.all(procs.slice(1).map(async (p) => [p.name, await stop(p)] as const))
    if (procs[0] !== undefined) codes.push([procs[0].name, await stop(procs[0])])
    const bad = codes.filter(([, c]) => c !== 0)
    say(bad.length === 0 ? 'all processes stopped cleanly' : `unclean exits: ${bad.map(([n, c]) => `${n}=${String(c)}`).join(', ')}`)
    await glance?.close()
    await rm(dir, { recursive: true, force: true })
  }
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = err instanceof UsageError ? 2 : 1
})
