import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * The data directory of one index server (the systemd StateDirectory):
 *
 *   root/<N>.yaml        every accepted root, the whole rotation chain (1.yaml installed by init)
 *   index.yaml           the current signed index, byte for byte as published
 *   images/<id>          verified image bytes (file name = torrent name = image id)
 *   verified/<id>.json   proof that images/<id> hashed to the signed sha512 (size + mtime)
 *   torrents/<ih>.torrent
 *   sites.yaml           site name → ed25519 public key, for signed reports
 *   state/               LevelDB: agent reports
 *   replaced/<time>/     what `init --force` moved aside (root/, index.yaml, verified/); reinit.ts
 */
export interface DataPaths {
  dir: string
  rootDir: string
  indexFile: string
  imagesDir: string
  verifiedDir: string
  torrentsDir: string
  sitesFile: string
  stateDir: string
}

export function dataPaths (dir: string): DataPaths {
  return {
    dir,
    rootDir: join(dir, 'root'),
    indexFile: join(dir, 'index.yaml'),
    imagesDir: join(dir, 'images'),
    verifiedDir: join(dir, 'verified'),
    torrentsDir: join(dir, 'torrents'),
    sitesFile: join(dir, 'sites.yaml'),
    stateDir: join(dir, 'state')
  }
}

export function rootFile (paths: DataPaths, version: number): string {
  return join(paths.rootDir, `${version}.yaml`)
}

export async function ensureDataDirs (paths: DataPaths): Promise<void> {
  for (const d of [paths.dir, paths.rootDir, paths.imagesDir, paths.verifiedDir, paths.torrentsDir, paths.stateDir]) {
    await mkdir(d, { recursive: true, mode: 0o750 })
  }
}
