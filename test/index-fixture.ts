import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { dataPaths, ensureDataDirs } from '../index-server/data-dir.js'
import { installRoot } from '../index-server/catalogue-store.js'
import { buildRoot, editIndex } from '../lib/catalogue-edit.js'
import { addSignature, serializeDocument } from '../lib/document.js'
import { rfc3339 } from '../lib/duration.js'
import { encodePublicKey, generateKeyPair, type KeyPair } from '../lib/keys.js'
import type { RootDocument } from '../lib/schema.js'
import { signReport, type Report } from '../lib/report.js'
import type { ImageState } from '../lib/image-state.js'
import { makeFixture, type Fixture, type FixtureOptions } from './helpers/catalogue-fixture.js'

/** Shared set-up of the index-server tests: a signed catalogue and an initialised data dir. */

export interface ServerDir { dir: string, dataDir: string, fx: Fixture }

interface Teardown { teardown: (fn: () => unknown) => void }

export async function makeServerDir (t: Teardown, opts: FixtureOptions = {}): Promise<ServerDir> {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-index-test-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const fx = await makeFixture(join(dir, 'fx'), opts)
  const dataDir = join(dir, 'data')
  const paths = dataPaths(dataDir)
  await ensureDataDirs(paths)
  await installRoot(paths, await readFile(fx.rootPath), new Date())
  return { dir, dataDir, fx }
}

export async function indexBytes (fx: Fixture): Promise<Buffer> { return await readFile(fx.indexPath) }

/** Root v2 of fx's catalogue: one new root key in place of fx's, the same index keys and threshold. */
export interface RootV2 {
  /** unsigned */
  v2: RootDocument
  newRootKey: KeyPair
  /** v2 signed per the rotation rule (by fx's root key and the new one), as PUT /v1/root.yaml takes it */
  rotated: string
}

export function rootV2 (fx: Fixture): RootV2 {
  const newRootKey = generateKeyPair()
  const v2 = buildRoot({
    name: fx.root.signed.name,
    version: 2,
    expires: new Date(Date.now() + 200 * 86400_000),
    rootKeys: [encodePublicKey(newRootKey.publicKey)],
    rootThreshold: 1,
    indexKeys: fx.indexKeys.map((k) => encodePublicKey(k.publicKey)),
    indexThreshold: fx.root.signed.roles.index.threshold
  })
  return { v2, newRootKey, rotated: serializeDocument(addSignature(addSignature(v2, fx.rootKeys[0] as KeyPair), newRootKey)) }
}

export interface FakeSite { name: string, key: KeyPair }

export function fakeSite (name: string): FakeSite { return { name, key: generateKeyPair() } }

export interface CellSpec { id: string, state: ImageState, progress?: number, size?: number, peers?: number, error?: { code: string, message: string } }

export function siteReport (site: FakeSite, catalogue: string, cells: CellSpec[], sent = new Date(), indexVersion = 1): Report {
  return signReport({
    type: 'report',
    site: site.name,
    sent: rfc3339(sent),
    agentVersion: '0.1.0',
    catalogues: [{ name: catalogue, rootVersion: 1, indexVersion, lastPoll: rfc3339(sent) }],
    images: cells.map((c) => {
      const size = c.size ?? 1024 * 1024
      const progress = c.progress ?? (c.state === 'registered' ? 1 : 0)
      const moving = c.state === 'downloading'
      return {
        catalogue,
        id: c.id,
        version: '1.0',
        state: c.state,
        progress,
        size,
        bytesFromPeers: Math.round(size * progress * 0.8),
        bytesFromWebSeeds: Math.round(size * progress * 0.2),
        bytesUploaded: c.state === 'registered' ? size * 2 : 0,
        downRate: moving ? 12_500_000 : 0,
        upRate: c.state === 'registered' ? 3_000_000 : 0,
        peers: c.peers ?? (moving ? 7 : 2),
        seeding: c.state === 'registered',
        ...(c.error !== undefined ? { error: c.error } : {})
      }
    })
  }, site.key)
}

/** Polls `check` until it returns a value other than undefined, or fails after `ms`. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A copy typed as fetch accepts it (Buffer's ArrayBufferLike is not a BodyInit for TypeScript). */
export function body (b: Uint8Array): Uint8Array<ArrayBuffer> { return new Uint8Array(b) }

/** PUT of a signed index to a running server over HTTP, as `imgdist-sign publish` does. */
export async function putIndex (url: string, bytes: Uint8Array): Promise<Response> {
  return await fetch(`${url}/v1/index.yaml`, { method: 'PUT', headers: { 'content-type': 'application/yaml' }, body: body(bytes) })
}

/** The built imgdist-index, as a user runs it. */
export const INDEX_BIN = join(import.meta.dirname, '..', 'dist', 'bin', 'imgdist-index.js')
const execp = promisify(execFile)

/** Runs imgdist-index ARGS to completion: its exit code and output, a failure included. */
export async function indexCli (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await execp(process.execPath, [INDEX_BIN, ...args])
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/**
 * Publishes (to fx's index file) an index of `n` made-up images, no bytes behind them: costly to
 * parse and verify (10 000 is the schema's maximum, seconds of CPU), cheap to build.
 */
export async function writeLargeIndex (fx: Fixture, n: number): Promise<Buffer> {
  await fx.publish((idx) => editIndex(idx, new Date(), (s) => ({
    ...s,
    images: Array.from({ length: n }, (_, i) => ({
      id: `bulk-${i}`, name: `Bulk image ${i}`, version: '2026.01.1', sha512: i.toString(16).padStart(128, 'a'), size: 1024 + i,
      infoHash: i.toString(16).padStart(40, 'b'), torrent: `torrents/${i.toString(16).padStart(40, 'b')}.torrent`,
      webSeeds: ['https://a.example.org/v1/images/x'], diskFormat: 'qcow2', containerFormat: 'bare', minDisk: 10, minRam: 512,
      arch: 'x86_64', os: 'linux', properties: { os_distro: 'alma', os_version: '9' }
    }))
  })))
  return await indexBytes(fx)
}

/** A running `imgdist-index serve` (the built bin) and its pino JSON log, line by line. */
export interface RunningIndex {
  proc: ChildProcess
  url: string
  exited: Promise<number | null>
  /** the next log line (after this call) that `match` accepts */
  nextLog: (match: (line: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>>
}

/** Starts `imgdist-index serve --no-seed ARGS` on a free port and reads the bound URL from its log. */
export async function serveIndex (tt: Teardown, dataDir: string, args: string[] = []): Promise<RunningIndex> {
  const proc = spawn(process.execPath, [INDEX_BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--no-seed', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  tt.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let stderr = ''
  proc.stderr?.on('data', (d) => { stderr += String(d) })
  const waiting = new Set<{ match: (l: Record<string, unknown>) => boolean, resolve: (l: Record<string, unknown>) => void }>()
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>
    try { line = JSON.parse(text) as Record<string, unknown> } catch { return }
    for (const w of waiting) if (w.match(line)) { waiting.delete(w); w.resolve(line) }
  })
  const nextLog = async (match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => await new Promise((resolve, reject) => {
    waiting.add({ match, resolve })
    void exited.then((code) => { reject(new Error(`serve exited ${code}: ${stderr}`)) })
  })
  const url = (await nextLog((l) => typeof l.url === 'string')).url as string
  return { proc, url, exited, nextLog }
}
