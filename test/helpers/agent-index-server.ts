import { readFile } from 'node:fs/promises'
import { startIndexDaemon } from '../../index-server/daemon.js'
import { resolveServeConfig } from '../../index-server/server-config.js'
import type { ImageEntry, IndexDocument } from '../../lib/schema.js'
import { body, makeServerDir, putIndex } from '../index-fixture.js'
import type { Fixture } from './catalogue-fixture.js'
import { waitFor } from './agent-proc.js'

/**
 * The real index server (imgdist-index's daemon, in this process) in front of an agent test: its
 * catalogue, .torrent files and origin seed, with the tracker it adds to the torrents and no web
 * seed, so that `uploadLimit` (bytes/s) is the only pace of a download.
 */

export interface IndexServer {
  dir: string
  fx: Fixture
  url: string
  indexUrl: string
  /** A new index version with `edit` applied, signed and PUT as `imgdist-sign publish` does. */
  publish: (edit: (idx: IndexDocument) => IndexDocument) => Promise<IndexDocument>
  /** Adds an image to the catalogue, publishes it, uploads its torrent and bytes and waits until the origin seeds it. */
  addImage: (id: string, size: number, pieceLength: number) => Promise<ImageEntry>
}

export async function startIndexServer (t: { teardown: (fn: () => unknown) => void }, opts: { uploadLimit: number }): Promise<IndexServer> {
  const { dir, dataDir, fx } = await makeServerDir(t)
  const base = resolveServeConfig(undefined, undefined, { dataDir, listen: '127.0.0.1:0', torrentPort: 0, dht: false })
  const daemon = await startIndexDaemon({
    ...base,
    seeding: { ...base.seeding, utp: false, uploadLimit: opts.uploadLimit },
    torrents: { ...base.torrents, injectWebSeed: false }
  }, { logger: false })
  t.teardown(async () => { await daemon.close() })
  const url = daemon.url
  const put = async (path: string, type: string, data: Uint8Array): Promise<void> => {
    const r = await fetch(url + path, { method: 'PUT', headers: { 'content-type': type }, body: body(data) })
    if (r.status !== 200) throw new Error(`PUT ${path}: HTTP ${r.status} ${await r.text()}`)
  }
  const putCurrentIndex = async (): Promise<void> => {
    const r = await putIndex(url, await readFile(fx.indexPath))
    if (r.status !== 200) throw new Error(`PUT index: HTTP ${r.status} ${await r.text()}`)
  }
  const seeding = async (): Promise<number> => ((await (await fetch(`${url}/healthz`)).json()) as { seeding: number | null }).seeding ?? 0
  return {
    dir, fx, url, indexUrl: `${url}/v1/index.yaml`,
    publish: async (edit) => {
      const idx = await fx.publish(edit)
      await putCurrentIndex()
      return idx
    },
    addImage: async (id, size, pieceLength) => {
      const before = await seeding()
      const entry = await fx.addImage(id, size, { pieceLength })
      await putCurrentIndex()
      await put(`/v1/torrents/${entry.infoHash}.torrent`, 'application/x-bittorrent', fx.torrents.get(entry.id) as Uint8Array)
      await put(`/v1/images/${entry.id}`, 'application/octet-stream', await readFile(fx.images.get(entry.id) as string))
      await waitFor(`the origin to seed ${id}`, async () => await seeding() > before)
      return entry
    }
  }
}
