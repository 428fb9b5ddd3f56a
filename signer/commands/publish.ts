import { Agent, request } from 'undici'
import { MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml, documentType } from '../../lib/document.js'
import { formatErrorEnvelope, parseErrorEnvelope } from '../../lib/error-envelope.js'
import { UsageError } from '../../lib/errors.js'
import type { Readable } from 'node:stream'
import type { IndexSigned } from '../../lib/schema.js'
import { duration, list, noPositionals, parseCommandArgs, required, str } from '../args.js'
import { asInputError, SignerError } from '../errors.js'
import { readBounded } from '../files.js'
import { note, out, type Io } from '../io.js'
import { releaseUploads } from '../release-uploads.js'

export const publishHelp = `NAME
    imgdist-sign publish - upload a signed root and/or index, the torrents and images to an index server

SYNOPSIS
    imgdist-sign publish --server URL [--root root.yaml] [--index index.yaml]
                         [--image ID=FILE ...] [--torrent-dir DIR] [--timeout DURATION]

DESCRIPTION
    PUTs root.yaml to URL/v1/root.yaml and index.yaml to URL/v1/index.yaml (in that order when
    both are given, so the server knows a rotated root's keys before the index they sign),
    as application/yaml, and prints the server's answer. The server accepts a document only if
    it verifies against the server's current root and raises the version; check first with
    "imgdist-sign verify".

    With --index it then uploads what sites need to download the release: the .torrent of
    every image the index lists, from where "imgdist-sign add" wrote it (DIR/<infoHash>.torrent
    with --torrent-dir, else the index's torrent: path next to the index; torrents not found
    are left out with a note), and the bytes of each --image (the server's origin seed and web
    seed; it keeps them only if size and sha512 match the signed entry). Agents watching the
    index start at once and retry until the bytes are there; to have them seeded the moment
    the index appears, stage them on the server first (imgdist-index import --index).

OPTIONS
    --server URL          base URL of the imgdist-index server, e.g. https://index.example.org
                          (required)
    --index FILE          the signed index to publish
    --root FILE           the signed root to publish (a key rotation)
    --image ID=FILE       upload FILE as image ID of the index (repeatable; its size is
                          checked against the index before anything is sent)
    --torrent-dir DIR     where add wrote the torrents (default: as the index names them,
                          relative to the index file)
    --timeout DURATION    give up on a server that does not answer (default 30s)
    -h, --help            show this help
    At least one of --index and --root is required.

EXAMPLES
    imgdist-sign publish --server https://index.example.org --index index.yaml
    imgdist-sign publish --server https://index.example.org --index index.yaml \\
        --image alma9-20250101=alma9.qcow2
    imgdist-sign publish --server http://127.0.0.1:8080 --root root-v2.yaml --index index.yaml

EXIT STATUS
    0  published
    1  refused by the server (its HTTP status, code and reason are printed)
    2  usage error, unreadable file, or the server could not be reached
`

export async function publish (argv: string[], io: Io): Promise<0> {
  const { values, positionals, help } = parseCommandArgs('publish', argv, {
    server: { type: 'string' }, index: { type: 'string' }, root: { type: 'string' }, timeout: { type: 'string' },
    image: { type: 'string', multiple: true }, 'torrent-dir': { type: 'string' }
  })
  if (help) { out(io, publishHelp.trimEnd()); return 0 }
  noPositionals('publish', positionals)
  const server = required('publish', values.server, '--server')
  let base: URL
  try { base = new URL(server) } catch { throw new UsageError(`publish: --server is not a URL: "${server}"`) }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`publish: --server must be http:// or https://, got "${server}"`)
  const timeout = duration(str(values.timeout), '--timeout') ?? 30_000
  const uploads: Array<{ kind: 'root' | 'index', path: string }> = []
  const rootPath = str(values.root)
  const indexPath = str(values.index)
  if (rootPath !== undefined) uploads.push({ kind: 'root', path: rootPath })
  if (indexPath !== undefined) uploads.push({ kind: 'index', path: indexPath })
  if (uploads.length === 0) throw new UsageError('publish: give --index FILE and/or --root FILE (see imgdist-sign publish --help)')
  const images = list(values.image)
  if (indexPath === undefined && (images.length > 0 || values['torrent-dir'] !== undefined)) {
    throw new UsageError('publish: --image and --torrent-dir go with --index (they name images of that index)')
  }

  // Read and sanity-check everything before sending anything: a typo must not half-publish.
  let index: IndexSigned | undefined
  const bodies = await Promise.all(uploads.map(async (u) => {
    const max = u.kind === 'root' ? MAX_ROOT_BYTES : MAX_INDEX_BYTES
    const bytes = await readBounded(u.path, max)
    try {
      const doc = parseSignedYaml(bytes, max, u.path)
      const type = documentType(doc)
      if (type !== u.kind) throw new UsageError(`publish: ${u.path} is ${type === 'index' ? 'an index' : 'a root'} document, given as --${u.kind}`)
      if (type === 'index') index = (doc as { signed: IndexSigned }).signed
    } catch (err) { throw asInputError(err) }
    return { ...u, bytes }
  }))
  const release = index !== undefined && indexPath !== undefined
    ? await releaseUploads(index, indexPath, { ...(str(values['torrent-dir']) !== undefined ? { torrentDir: str(values['torrent-dir']) } : {}), images })
    : { uploads: [], notes: [] }

  // Our own dispatcher, closed at the end, so no idle keep-alive socket holds the process open.
  const dispatcher = new Agent({ connectTimeout: timeout, headersTimeout: timeout, bodyTimeout: timeout })
  try {
    for (const b of bodies) await putOne(io, dispatcher, base, { path: b.path, urlPath: `v1/${b.kind}.yaml`, contentType: 'application/yaml', body: b.bytes }, timeout)
    for (const n of release.notes) note(io, `publish: ${n}`)
    for (const u of release.uploads) {
      await putOne(io, dispatcher, base, { path: u.path, urlPath: u.urlPath, contentType: u.contentType, body: u.open(), size: u.size }, timeout)
    }
  } finally {
    await dispatcher.close()
  }
  return 0
}

interface Put { path: string, urlPath: string, contentType: string, body: Buffer | Readable, size?: number }

async function putOne (io: Io, dispatcher: Agent, base: URL, b: Put, timeout: number): Promise<void> {
  {
    const url = new URL(b.urlPath, base.href.endsWith('/') ? base.href : base.href + '/')
    let res
    try {
      res = await request(url, {
        dispatcher,
        method: 'PUT',
        body: b.body,
        headers: {
          'content-type': b.contentType, accept: 'application/json, text/plain;q=0.5',
          ...(b.size !== undefined ? { 'content-length': String(b.size) } : {})
        },
        headersTimeout: timeout,
        bodyTimeout: timeout
      })
    } catch (err) {
      throw new SignerError('NETWORK_ERROR', `publish: cannot reach ${url.href}: ${(err as Error).message}`, 2, { cause: err })
    }
    // the server answers JSON, {code, message} on refusal; anything else is shown as text
    const answer = parseErrorEnvelope(res.statusCode, await res.body.text().catch(() => ''))
    if (res.statusCode < 200 || res.statusCode > 299) {
      // the code leads the line already (imgdist-sign: CODE: ...)
      throw new SignerError(answer.code ?? 'HTTP_ERROR', `publish: ${url.href} refused ${b.path}: ${formatErrorEnvelope(answer, { withCode: false })}`, 1)
    }
    out(io, `published ${b.path} to ${url.href}: HTTP ${res.statusCode}${answer.message !== '' ? ` ${answer.message}` : ''}`)
  }
}
