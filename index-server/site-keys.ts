import { readFile, stat } from 'node:fs/promises'
import { parse, stringify } from 'yaml'
import { ConfigError, ImgdistError } from '../lib/errors.js'
import { decodePublicKey, keyIdOf } from '../lib/keys.js'
import { ID_PATTERN } from '../lib/schema.js'
import { writeFileAtomic } from './atomic-file.js'

/**
 * Site keys for signed reports live in DATA/sites.yaml (`sites: {name: ed25519:...}`), a plain
 * file rather than LevelDB so `imgdist-index sites add` works while the server runs; the server
 * re-reads it when its mtime changes.
 */

export interface SiteKey { name: string, publicKey: string, keyid: string }

const NAME_RE = new RegExp(ID_PATTERN)

export class SiteKeys {
  readonly file: string
  #cache: { mtimeMs: number, sites: Map<string, SiteKey> } | undefined

  constructor (file: string) { this.file = file }

  async list (): Promise<SiteKey[]> { return [...(await this.#load()).values()].sort((a, b) => a.name.localeCompare(b.name)) }

  async get (name: string): Promise<SiteKey | undefined> { return (await this.#load()).get(name) }

  async add (name: string, publicKey: string, replace = false): Promise<SiteKey> {
    if (!NAME_RE.test(name)) throw new ConfigError(`site name "${name}" must match ${ID_PATTERN}`, [], 'USAGE')
    // a key the user typed or pointed to: bad input (exit 2), unlike a signature that fails
    let raw: Uint8Array
    try { raw = decodePublicKey(publicKey) } catch (err) {
      throw new ConfigError(`site "${name}": ${(err as Error).message}`, [], 'KEY_INVALID', { cause: err })
    }
    const sites = new Map(await this.#load())
    if (sites.has(name) && !replace) throw new ImgdistError('SITE_EXISTS', `site "${name}" is already registered; use --replace to change its key`)
    const key: SiteKey = { name, publicKey: publicKey.trim(), keyid: keyIdOf(raw) }
    sites.set(name, key)
    await this.#save(sites)
    return key
  }

  async remove (name: string): Promise<boolean> {
    const sites = new Map(await this.#load())
    if (!sites.delete(name)) return false
    await this.#save(sites)
    return true
  }

  async #save (sites: Map<string, SiteKey>): Promise<void> {
    const obj = Object.fromEntries([...sites.values()].sort((a, b) => a.name.localeCompare(b.name)).map((s) => [s.name, s.publicKey]))
    await writeFileAtomic(this.file, '# imgdist-index site keys: site name -> ed25519 public key (managed by `imgdist-index sites`)\n' + stringify({ sites: obj }))
    this.#cache = undefined
  }

  async #load (): Promise<Map<string, SiteKey>> {
    let mtimeMs: number
    try { mtimeMs = (await stat(this.file)).mtimeMs } catch { return new Map() }
    if (this.#cache !== undefined && this.#cache.mtimeMs === mtimeMs) return this.#cache.sites
    const doc = parse(await readFile(this.file, 'utf8'), { schema: 'core', uniqueKeys: true, maxAliasCount: 0 }) as { sites?: Record<string, unknown> } | null
    const sites = new Map<string, SiteKey>()
    for (const [name, pub] of Object.entries(doc?.sites ?? {})) {
      if (!NAME_RE.test(name) || typeof pub !== 'string') throw new ImgdistError('DATA_CORRUPT', `${this.file}: bad entry "${name}"`)
      sites.set(name, { name, publicKey: pub, keyid: keyIdOf(decodePublicKey(pub)) })
    }
    this.#cache = { mtimeMs, sites }
    return sites
  }
}
