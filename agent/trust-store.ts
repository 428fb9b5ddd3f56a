import type { RootDocument } from '../lib/schema.js'
import type { JsonStore } from './db.js'

/**
 * The highest root and index this site has accepted, per catalogue, in LevelDB. Written before
 * the new catalogue is acted on, so a restart (or a replayed old index) cannot roll the site back.
 */

export interface StoredIndex {
  version: number
  digest: string
  /** the accepted index.yaml as received, so a restart has the last good catalogue offline */
  text: string
  signers: string[]
  acceptedAt: string
}

export class TrustStore {
  readonly #db: JsonStore
  constructor (db: JsonStore) { this.#db = db }

  async getRoot (catalogue: string): Promise<RootDocument | undefined> {
    return await this.#db.get(`root/${catalogue}`) as RootDocument | undefined
  }

  async putRoot (catalogue: string, root: RootDocument): Promise<void> {
    await this.#db.put(`root/${catalogue}`, root)
  }

  async getIndex (catalogue: string): Promise<StoredIndex | undefined> {
    return await this.#db.get(`index/${catalogue}`) as StoredIndex | undefined
  }

  /** Root and index together, atomically: never a new root without the index that came with it. */
  async putAccepted (catalogue: string, root: RootDocument, index: StoredIndex): Promise<void> {
    await this.#db.batch([
      { type: 'put', key: `root/${catalogue}`, value: root },
      { type: 'put', key: `index/${catalogue}`, value: index }
    ])
  }
}
