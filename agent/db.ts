import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { ImgdistError } from '../lib/errors.js'

/** The few LevelDB operations the stores use, so they can share one database under dataDir. */
export interface JsonStore {
  get: (key: string) => Promise<unknown>
  put: (key: string, value: unknown) => Promise<void>
  del: (key: string) => Promise<void>
  batch: (ops: Array<{ type: 'put', key: string, value: unknown } | { type: 'del', key: string }>) => Promise<void>
  iterator: () => AsyncIterable<[string, unknown]>
}

export interface AgentDb { root: Level<string, unknown>, sub: (name: string) => JsonStore, close: () => Promise<void> }

export async function openDb (dataDir: string): Promise<AgentDb> {
  const path = join(dataDir, 'state')
  await mkdir(path, { recursive: true })
  const root = new Level<string, unknown>(path, { valueEncoding: 'json' })
  try { await root.open() } catch (err) {
    throw new ImgdistError('IO_ERROR', `cannot open the state database ${path} (is another agent running on this dataDir?)`, { cause: err })
  }
  return {
    root,
    sub: (name) => root.sublevel<string, unknown>(name, { valueEncoding: 'json' }) as unknown as JsonStore,
    close: async () => { await root.close() }
  }
}
