import { existsSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { MAX_INDEX_BYTES, parseSignedYaml } from '../lib/document.js'
import { ConfigError, ImgdistError, UsageError } from '../lib/errors.js'
import type { IndexDocument } from '../lib/schema.js'
import { acceptIndex, checkIndexShape } from '../lib/trust.js'
import { MAX_TORRENT_BYTES } from '../lib/torrent-meta.js'
import { CatalogueStore, installRoot } from './catalogue-store.js'
import { dataPaths, ensureDataDirs } from './data-dir.js'
import { HELP, MAIN_HELP } from './help.js'
import { finishReinit } from './reinit.js'
import { ImageStore } from './image-store.js'
import { ReportStore } from './report-store.js'
import { resolveServeConfig, type IndexServerConfig, type ServeFlags } from './server-config.js'
import { SiteKeys } from './site-keys.js'
import { TorrentStore } from './torrent-store.js'

/** The non-daemon commands of imgdist-index; bin.ts owns process, signals and exit codes. */

export interface CliIo { out: (line: string) => void, now: () => Date }

function parse (args: string[], options: ParseArgsConfig['options'], positionals = true): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options: { help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals: positionals, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'bad arguments')
  }
}

function need (v: unknown, flag: string): string {
  if (typeof v !== 'string' || v === '') throw new UsageError(`${flag} is required`)
  return v
}

/**
 * A file named on the command line that cannot be read is the user's mistake, as a bad flag is
 * (exit 2, DESIGN.md §5), not a failed verification: ConfigError carries that to bin.ts. One
 * that is too large stays a refusal (exit 1): it is the document being checked that fails.
 */
export async function readArg (path: string, max: number, what: string): Promise<Buffer> {
  let b: Buffer
  try { b = await readFile(path) } catch (err) { throw unreadable(err, what, path) }
  if (b.byteLength > max) throw new ImgdistError('TOO_LARGE', `${what} ${path} is over ${max} bytes`)
  return b
}

function unreadable (err: unknown, what: string, path: string, hint = ''): ConfigError {
  return new ConfigError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}${hint}`, [], 'IO_ERROR', { cause: err })
}

/** Checked before anything is created, so that a mistyped path leaves DIR as it was. */
async function readableFile (path: string, what: string): Promise<void> {
  let fh
  try { fh = await open(path, 'r') } catch (err) { throw unreadable(err, what, path) }
  try {
    if (!(await fh.stat()).isFile()) throw new ConfigError(`${what} ${path} is not a regular file`, [], 'IO_ERROR')
  } finally { await fh.close() }
}

/** PUBKEY as the help describes it: the key itself, or a file holding it. */
async function readSiteKeyArg (arg: string): Promise<string> {
  if (arg.startsWith('ed25519:')) return arg
  let b: Buffer
  try { b = await readFile(arg) } catch (err) { throw unreadable(err, 'public key file', arg, ' (PUBKEY is "ed25519:<base64>" or a file holding it)') }
  if (b.byteLength > 4096) throw new ConfigError(`${arg} is ${b.byteLength} bytes, too large for a public key file (one line, "ed25519:<base64>")`, [], 'KEY_INVALID')
  return b.toString('utf8').trim()
}

export function helpFor (cmd: string | undefined): string {
  return (cmd !== undefined ? HELP[cmd] : undefined) ?? MAIN_HELP
}

export async function cmdInit (args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { 'data-dir': { type: 'string' }, root: { type: 'string' }, force: { type: 'boolean' } }, false)
  if (values.help === true) { io.out(helpFor('init')); return 0 }
  if (positionals.length > 0) throw new UsageError('init takes no positional arguments')
  const paths = dataPaths(need(values['data-dir'], '--data-dir'))
  const bytes = await readArg(need(values.root, '--root'), 1024 * 1024, 'root')
  await ensureDataDirs(paths)
  if (values.force === true) await refuseWhileServing(paths.stateDir)
  const { root, replaced } = await installRoot(paths, bytes, io.now(), values.force === true)
  io.out(`installed root v${root.signed.version} of catalogue "${root.signed.name}" in ${paths.rootDir} (expires ${root.signed.expires})`)
  if (replaced !== undefined) io.out(`the previous root chain, index and verification markers were moved to ${replaced}`)
  return 0
}

/** A running server keeps the catalogue in memory and would go on serving the old one. */
async function refuseWhileServing (stateDir: string): Promise<void> {
  try {
    await (await ReportStore.open(stateDir)).close()
  } catch (err) {
    if (err instanceof ImgdistError && err.code === 'STATE_LOCKED') {
      throw new ImgdistError('STATE_LOCKED', `${stateDir} is in use by a running imgdist-index; stop it before init --force`)
    }
    throw err
  }
}

export async function cmdSites (args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { 'data-dir': { type: 'string' }, replace: { type: 'boolean' } })
  if (values.help === true) { io.out(helpFor('sites')); return 0 }
  const [sub, ...rest] = positionals
  const dataDir = need(values['data-dir'], '--data-dir')
  // a mistyped DIR would otherwise list no sites, or fail to add one with a bare ENOENT
  if (!existsSync(dataDir)) throw new ConfigError(`--data-dir ${dataDir}: no such directory; give the one "imgdist-index init" made`, [], 'NOT_FOUND')
  const sites = new SiteKeys(dataPaths(dataDir).sitesFile)
  switch (sub) {
    case 'add': {
      if (rest.length !== 2) throw new UsageError('usage: imgdist-index sites add NAME PUBKEY|FILE.pub --data-dir DIR')
      const [name, keyArg] = rest as [string, string]
      const key = await sites.add(name, await readSiteKeyArg(keyArg), values.replace === true)
      io.out(`site "${key.name}" registered (key id ${key.keyid.slice(0, 16)})`)
      return 0
    }
    case 'list': {
      for (const s of await sites.list()) io.out(`${s.name}\t${s.publicKey}\t${s.keyid.slice(0, 16)}`)
      return 0
    }
    case 'remove': {
      if (rest.length !== 1) throw new UsageError('usage: imgdist-index sites remove NAME --data-dir DIR')
      const name = rest[0] as string
      if (!(await sites.remove(name))) throw new ConfigError(`no site "${name}" in ${sites.file}; "imgdist-index sites list --data-dir ${dataDir}" shows the registered ones`, [], 'NOT_FOUND')
      await dropReport(dataPaths(dataDir).stateDir, name)
      io.out(`site "${name}" removed`)
      return 0
    }
    default:
      throw new UsageError(`sites: expected add, list or remove${sub !== undefined ? `, got "${sub}"` : ''}`)
  }
}

/** The site's last report goes too, unless a running server holds the state: it drops it itself (fleet-routes.ts). */
async function dropReport (stateDir: string, site: string): Promise<void> {
  if (!existsSync(stateDir)) return
  let reports: ReportStore
  try { reports = await ReportStore.open(stateDir) } catch (err) {
    if (err instanceof ImgdistError && err.code === 'STATE_LOCKED') return
    throw err
  }
  try { await reports.delete(site) } finally { await reports.close() }
}

export async function cmdImport (args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { 'data-dir': { type: 'string' }, id: { type: 'string' }, torrent: { type: 'string' }, index: { type: 'string' } })
  if (values.help === true) { io.out(helpFor('import')); return 0 }
  if (positionals.length !== 1) throw new UsageError('usage: imgdist-index import --data-dir DIR --id ID [--torrent FILE] [--index SIGNED-INDEX.yaml] IMAGE-FILE')
  const paths = dataPaths(need(values['data-dir'], '--data-dir'))
  const id = need(values.id, '--id')
  const imageFile = positionals[0] as string
  await readableFile(imageFile, 'IMAGE-FILE')
  await ensureDataDirs(paths)
  await finishReinit(paths)
  let index: IndexDocument
  if (typeof values.index === 'string') {
    // Staging: the bytes go in before the index that lists them is published, so the origin
    // seeds the release the moment it is. The entry must carry the endorsers' signatures.
    const store = await CatalogueStore.open(paths)
    const staged = parseSignedYaml(await readArg(values.index, MAX_INDEX_BYTES, 'index'), MAX_INDEX_BYTES, values.index)
    index = acceptIndex(store.root.doc.signed, staged, { now: new Date() }).doc
    const live = store.index?.doc.signed.images.find((i) => i.id === id)
    const next = index.signed.images.find((i) => i.id === id)
    if (live !== undefined && next !== undefined && live.sha512 !== next.sha512) {
      throw new ImgdistError('CONFLICT', `the published index v${store.index?.version ?? 0} serves other bytes as "${id}"; an image id names one release, so stage the new one under a new id`)
    }
  } else {
    const indexBytes = await readArg(paths.indexFile, MAX_INDEX_BYTES, 'index').catch(() => {
      throw new ImgdistError('NOT_FOUND', `no index published in ${paths.dir} yet; publish it first (PUT /v1/index.yaml) or stage with --index`)
    })
    index = checkIndexShape(parseSignedYaml(indexBytes, MAX_INDEX_BYTES, 'index.yaml'))
  }
  const entry = index.signed.images.find((i) => i.id === id)
  // the catalogue is fine; the user named an image it does not have
  if (entry === undefined) throw new ConfigError(`index v${index.signed.version} lists no image "${id}"; check --id`, [], 'NOT_FOUND')
  if (typeof values.torrent === 'string') {
    await new TorrentStore(paths).store(entry, await readArg(values.torrent, MAX_TORRENT_BYTES, 'torrent'))
    io.out(`torrent ${entry.infoHash} stored`)
  }
  await new ImageStore(paths).importFile(entry, imageFile)
  io.out(`image "${id}" verified (sha512 ${entry.sha512.slice(0, 16)}…, ${entry.size} bytes) and stored in ${paths.imagesDir}`)
  return 0
}

export interface ServeArgs { help: boolean, configFile?: string, flags: ServeFlags }

export function parseServe (args: string[]): ServeArgs {
  const { values, positionals } = parse(args, {
    'data-dir': { type: 'string' },
    listen: { type: 'string' },
    'public-url': { type: 'string' },
    config: { type: 'string' },
    'no-dht': { type: 'boolean' },
    'no-seed': { type: 'boolean' },
    'torrent-port': { type: 'string' }
  }, false)
  if (positionals.length > 0) throw new UsageError('serve takes no positional arguments')
  let torrentPort: number | undefined
  const tp = values['torrent-port']
  if (typeof tp === 'string') {
    torrentPort = Number(tp)
    if (!/^\d{1,5}$/.test(tp) || torrentPort > 65535) throw new UsageError(`--torrent-port must be 0..65535, got "${tp}"`)
  }
  const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
  return {
    help: values.help === true,
    configFile: str(values.config),
    flags: {
      dataDir: str(values['data-dir']),
      listen: str(values.listen),
      publicUrl: str(values['public-url']),
      ...(values['no-dht'] === true ? { dht: false } : {}),
      ...(values['no-seed'] === true ? { seed: false } : {}),
      ...(torrentPort !== undefined ? { torrentPort } : {})
    }
  }
}

/** undefined when --help was asked for. */
export async function loadServeConfig (args: string[]): Promise<IndexServerConfig | undefined> {
  const parsed = parseServe(args)
  if (parsed.help) return undefined
  // a config that cannot be read is a bad config (exit 2, as --help says), as for imgdist-agent
  const text = parsed.configFile === undefined
    ? undefined
    : (await readArg(parsed.configFile, 1024 * 1024, 'config').catch((err: unknown) => { throw new ConfigError((err as Error).message) })).toString('utf8')
  return resolveServeConfig(text, parsed.configFile, parsed.flags)
}
