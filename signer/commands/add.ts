import { stat, mkdir } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { rfc3339 } from '../../lib/duration.js'
import { emptyIndex, upsertImage } from '../../lib/catalogue-edit.js'
import { UsageError } from '../../lib/errors.js'
import { propertyProblems } from '../../lib/image-properties.js'
import type { ImageEntry, IndexDocument } from '../../lib/schema.js'
import { buildTorrent, choosePieceLength, isValidPieceLength } from '../../lib/torrent-meta.js'
import { duration, integer, list, onePositional, parseCommandArgs, required, str } from '../args.js'
import { loadIndexInput, loadRootInput, saveDocument } from '../documents.js'
import { SignerError } from '../errors.js'
import { exists, fsError, writeAtomic } from '../files.js'
import { hashImageFile } from '../hash-image.js'
import { out, type Io } from '../io.js'
import { droppedSignatures, nextIndexVersion } from '../next-index.js'
import { formatBytes, hashingProgress } from '../progress.js'
import { addDuration } from '../time.js'
import { addHelp } from './add-help.js'

export { addHelp }

const DEFAULT_INDEX_LIFETIME = 30 * 86_400_000
const DISK_FORMATS = 'ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2, vdi, iso, ploop'

export async function add (argv: string[], io: Io): Promise<0> {
  const { values: v, positionals, help } = parseCommandArgs('add', argv, {
    index: { type: 'string' },
    catalogue: { type: 'string' },
    root: { type: 'string' },
    id: { type: 'string' },
    name: { type: 'string' },
    version: { type: 'string' },
    'disk-format': { type: 'string' },
    'container-format': { type: 'string' },
    os: { type: 'string' },
    arch: { type: 'string' },
    'min-disk': { type: 'string' },
    'min-ram': { type: 'string' },
    property: { type: 'string', multiple: true },
    'web-seed': { type: 'string', multiple: true },
    tracker: { type: 'string', multiple: true },
    expires: { type: 'string' },
    'index-expires': { type: 'string' },
    'torrent-dir': { type: 'string' },
    'piece-length': { type: 'string' },
    'hash-threads': { type: 'string' }
  })
  if (help) { out(io, addHelp.trimEnd()); return 0 }
  const imagePath = onePositional('add', positionals, 'IMAGE_FILE')
  const indexPath = required('add', v.index, '--index')
  const id = required('add', v.id, '--id')
  const now = io.now()

  // Everything that can be wrong with the command line is found before the long hashing pass.
  const properties: Record<string, string> = {}
  for (const p of list(v.property)) {
    const eq = p.indexOf('=')
    if (eq <= 0) throw new UsageError(`add: --property must look like key=value, got "${p}"`)
    properties[p.slice(0, eq)] = p.slice(eq + 1)
  }
  // Every Glance site would refuse these only after downloading the image: say so before signing.
  const badProperties = propertyProblems(Object.entries(properties))
  if (badProperties.length > 0) throw new UsageError(`add: --property that Glance sites refuse: ${badProperties.join('; ')}`)
  const trackers = list(v.tracker)
  for (const t of trackers) if (!/^(https?|udp|wss?):\/\/\S+$/.test(t)) throw new UsageError(`add: --tracker must be an http(s)://, udp:// or ws(s):// URL, got "${t}"`)
  const webSeeds = list(v['web-seed'])
  const imageLifetime = duration(str(v.expires), '--expires')
  const indexLifetime = duration(str(v['index-expires']), '--index-expires')
  const pieceArg = integer(str(v['piece-length']), '--piece-length', 1)
  if (pieceArg !== undefined && !isValidPieceLength(pieceArg)) throw new UsageError(`add: --piece-length must be a power of two from 16384 (16 KiB) to 16777216 (16 MiB), got ${pieceArg}`)
  const threadsArg = integer(str(v['hash-threads']), '--hash-threads', 1, 2)
  const threads: 1 | 2 = threadsArg === 1 || (threadsArg === undefined && availableParallelism() < 2) ? 1 : 2

  const index = await loadOrCreateIndex(indexPath, str(v.catalogue), str(v.root), now, indexLifetime)
  const torrentDir = str(v['torrent-dir']) ?? join(dirname(indexPath), 'torrents')

  let size: number
  try {
    const st = await stat(imagePath)
    if (!st.isFile()) throw new SignerError('IO_ERROR', `${imagePath}: not a regular file`, 2)
    size = st.size
  } catch (err) { throw err instanceof SignerError ? err : fsError(err, imagePath) }
  if (size === 0) throw new UsageError(`add: ${imagePath} is empty`)

  const entryOf = (h: { sha512: string, size: number, infoHash: string }): ImageEntry => ({
    id,
    name: str(v.name) ?? id,
    version: required('add', v.version, '--version'),
    sha512: h.sha512,
    size: h.size,
    infoHash: h.infoHash,
    torrent: `torrents/${h.infoHash}.torrent`,
    ...(webSeeds.length > 0 ? { webSeeds } : {}),
    diskFormat: required('add', v['disk-format'], `--disk-format (one of ${DISK_FORMATS})`) as ImageEntry['diskFormat'],
    containerFormat: (str(v['container-format']) ?? 'bare') as ImageEntry['containerFormat'],
    minDisk: integer(str(v['min-disk']), '--min-disk', 0) ?? 0,
    minRam: integer(str(v['min-ram']), '--min-ram', 0) ?? 0,
    arch: str(v.arch) ?? 'x86_64',
    os: str(v.os) ?? 'linux',
    properties,
    ...(imageLifetime !== undefined ? { expires: rfc3339(addDuration(now, imageLifetime)) } : {})
  })
  const edit = (entry: ImageEntry): IndexDocument =>
    nextIndexVersion(index, now, (s) => upsertImage(s, entry), indexLifetime, 'add: the image entry would make an invalid index')
  edit(entryOf({ sha512: '0'.repeat(128), size, infoHash: '0'.repeat(40) })) // dry run: reject bad flags now

  const pieceLength = pieceArg ?? choosePieceLength(size)
  const progress = hashingProgress(io, `hashing ${id}`, size)
  let hashed
  try {
    hashed = await hashImageFile(imagePath, { pieceLength, threads, onProgress: progress.update })
  } finally { progress.stop() }

  const torrent = buildTorrent({
    name: id, length: hashed.size, pieceLength, pieces: hashed.pieces,
    announce: trackers, webSeeds, createdBy: 'imgdist-sign', creationDate: Math.floor(now.getTime() / 1000)
  })
  const next = edit(entryOf({ sha512: hashed.sha512, size: hashed.size, infoHash: torrent.infoHash }))
  // The torrent goes first: a published index must never name a torrent that is not there.
  try { await mkdir(torrentDir, { recursive: true }) } catch (err) { throw fsError(err, torrentDir) }
  const torrentPath = join(torrentDir, `${torrent.infoHash}.torrent`)
  await writeAtomic(torrentPath, torrent.bytes)
  await saveDocument(indexPath, next)

  out(io, `added ${id} to ${indexPath} v${next.signed.version}: ${hashed.size} bytes (${formatBytes(hashed.size)}), sha512 ${hashed.sha512.slice(0, 16)}..., ` +
    `infoHash ${torrent.infoHash}, torrent ${torrentPath} (${Math.ceil(hashed.size / pieceLength)} pieces of ${formatBytes(pieceLength)})${droppedSignatures(index)}; now sign it`)
  return 0
}

async function loadOrCreateIndex (path: string, catalogue: string | undefined, rootPath: string | undefined, now: Date, lifetime: number | undefined): Promise<IndexDocument> {
  const rootName = rootPath !== undefined ? (await loadRootInput(rootPath)).signed.name : undefined
  if (catalogue !== undefined && rootName !== undefined && catalogue !== rootName) {
    throw new UsageError(`add: --catalogue "${catalogue}" differs from the name "${rootName}" in ${rootPath as string}`)
  }
  const name = catalogue ?? rootName
  if (await exists(path)) {
    const index = await loadIndexInput(path)
    if (name !== undefined && name !== index.signed.name) throw new UsageError(`add: ${path} is the index of "${index.signed.name}", not "${name}"`)
    return index
  }
  if (name === undefined) throw new UsageError(`add: ${path} does not exist yet; give --catalogue NAME or --root root.yaml to create it`)
  return emptyIndex(name, now, addDuration(now, lifetime ?? DEFAULT_INDEX_LIFETIME))
}
