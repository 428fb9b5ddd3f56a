import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { contentDigest, MAX_INDEX_BYTES, MAX_ROOT_BYTES, parseSignedYaml } from '../lib/document.js'
import { ImgdistError, toImgdistError } from '../lib/errors.js'
import type { IndexDocument, RootDocument } from '../lib/schema.js'
import { checkIndexShape, checkRootShape, verifySelfSignedRoot, verifyThreshold, walkRootChain } from '../lib/trust.js'
import { exists, writeFileAtomic } from './atomic-file.js'
import { rootFile, type DataPaths } from './data-dir.js'
import { Mutex } from './mutex.js'
import { finishReinit, replaceCatalogue } from './reinit.js'
import { checkUpload, type CheckedUpload, type UploadCheck } from './upload-check.js'

/** One published document exactly as signed and uploaded, with its strong ETag. */
export interface StoredDocument<T> { doc: T, bytes: Buffer, etag: string, version: number }

export type CatalogueChange = { kind: 'index' | 'root', version: number }

/** Parses and verifies an upload: in a worker thread in the server (upload-checker.ts), in-line by default. */
export type CheckUploadFn = (c: UploadCheck) => Promise<CheckedUpload>

function stored<T extends { signed: { version: number } }> (doc: T, bytes: Buffer): StoredDocument<T> {
  return { doc, bytes, etag: `"${createHash('sha256').update(bytes).digest('hex')}"`, version: doc.signed.version }
}

/**
 * The trusted root chain and the current index of one catalogue, on disk and in memory. Every
 * publish goes through one mutex and is checked against the state left by the previous one, so
 * concurrent PUTs end in the highest valid version; a refused publish changes nothing.
 */
export class CatalogueStore {
  readonly paths: DataPaths
  #roots: Array<StoredDocument<RootDocument>>
  #index: StoredDocument<IndexDocument> | undefined
  /** contentDigest of the index in force, kept: a publish would otherwise recompute it on the event loop */
  #indexDigest: string | undefined
  readonly #check: CheckUploadFn
  #mutex = new Mutex()
  #listeners: Array<(c: CatalogueChange) => void> = []

  private constructor (paths: DataPaths, roots: Array<StoredDocument<RootDocument>>, index: StoredDocument<IndexDocument> | undefined, check: CheckUploadFn) {
    this.paths = paths
    this.#roots = roots
    this.#index = index
    this.#indexDigest = index === undefined ? undefined : contentDigest(index.doc.signed)
    this.#check = check
  }

  /** Loads what earlier publishes wrote. Documents were verified when accepted; the chain is re-walked anyway. */
  static async open (paths: DataPaths, check: CheckUploadFn = async (c) => checkUpload(c)): Promise<CatalogueStore> {
    await finishReinit(paths)
    const roots = await loadRootChain(paths)
    let index: StoredDocument<IndexDocument> | undefined
    let bytes: Buffer | undefined
    try { bytes = await readFile(paths.indexFile) } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toImgdistError(err, 'IO_ERROR')
    }
    if (bytes !== undefined) {
      try {
        index = stored(checkIndexShape(parseSignedYaml(bytes, MAX_INDEX_BYTES, 'index.yaml')), bytes)
      } catch (err) {
        throw new ImgdistError('DATA_CORRUPT', `${paths.indexFile}: ${(err as Error).message}`, { cause: err })
      }
      const rootName = (roots[roots.length - 1] as StoredDocument<RootDocument>).doc.signed.name
      if (index.doc.signed.name !== rootName) {
        // Served as is it would be refused by every agent, and would block the catalogue's own v1 as a rollback.
        throw new ImgdistError('DATA_CORRUPT', `${paths.indexFile} is the index of catalogue "${index.doc.signed.name}", but the trusted root in ${paths.rootDir} is of "${rootName}"; ` +
          `move ${paths.indexFile} away, or install the root with: imgdist-index init --force (keeps the old state in ${paths.dir}/replaced/)`)
      }
    }
    return new CatalogueStore(paths, roots, index, check)
  }

  get root (): StoredDocument<RootDocument> { return this.#roots[this.#roots.length - 1] as StoredDocument<RootDocument> }
  get roots (): ReadonlyArray<StoredDocument<RootDocument>> { return this.#roots }
  rootVersion (version: number): StoredDocument<RootDocument> | undefined { return this.#roots.find((r) => r.version === version) }
  get index (): StoredDocument<IndexDocument> | undefined { return this.#index }
  get name (): string { return this.root.doc.signed.name }

  onChange (listener: (c: CatalogueChange) => void): void { this.#listeners.push(listener) }

  /** Accepts a new index only if it verifies against the current root and raises the version. */
  async publishIndex (bytes: Buffer, now: Date): Promise<StoredDocument<IndexDocument>> {
    return await this.#mutex.run(async () => {
      const current = this.#index
      const last = current === undefined || this.#indexDigest === undefined ? undefined : { version: current.version, digest: this.#indexDigest }
      const checked = await this.#check({ kind: 'index', bytes, root: this.root.doc.signed, last, now: now.getTime() })
      if (checked.kind !== 'index') throw new ImgdistError('INTERNAL', 'the index check answered for a root')
      if (current !== undefined && checked.doc.signed.version === current.version) {
        throw new ImgdistError('VERSION_NOT_RAISED', `index version ${current.version} is already published; a publish must raise the version`)
      }
      const next = stored(checked.doc, bytes)
      await writeFileAtomic(this.paths.indexFile, bytes)
      this.#index = next
      this.#indexDigest = checked.digest
      this.#emit({ kind: 'index', version: next.version })
      return next
    })
  }

  /** Accepts root N+1 signed per the rotation rule; the chain on disk grows by one file. */
  async publishRoot (bytes: Buffer, now: Date): Promise<StoredDocument<RootDocument>> {
    return await this.#mutex.run(async () => {
      const checked = await this.#check({ kind: 'root', bytes, root: this.root.doc.signed, now: now.getTime() })
      if (checked.kind !== 'root') throw new ImgdistError('INTERNAL', 'the root check answered for an index')
      const next = stored(checked.doc, bytes)
      await writeFileAtomic(rootFile(this.paths, next.version), bytes)
      this.#roots = [...this.#roots, next]
      this.#emit({ kind: 'root', version: next.version })
      return next
    })
  }

  #emit (c: CatalogueChange): void {
    for (const l of this.#listeners) l(c)
  }
}


/** Reads root/<N>.yaml files, checks they form one unbroken chain starting from the installed root. */
async function loadRootChain (paths: DataPaths): Promise<Array<StoredDocument<RootDocument>>> {
  let names: string[]
  try { names = await readdir(paths.rootDir) } catch { names = [] }
  const versions = names.map((n) => /^([1-9]\d{0,15})\.yaml$/.exec(n)?.[1]).filter((v): v is string => v !== undefined).map(Number).sort((a, b) => a - b)
  if (versions.length === 0) {
    throw new ImgdistError('NO_ROOT', `no trusted root in ${paths.rootDir}; run: imgdist-index init --data-dir ${paths.dir} --root root.yaml`)
  }
  const out: Array<StoredDocument<RootDocument>> = []
  for (const v of versions) {
    const file = join(paths.rootDir, `${v}.yaml`)
    try {
      const bytes = await readFile(file)
      const parsed = parseSignedYaml(bytes, MAX_ROOT_BYTES, file)
      let doc: RootDocument
      const prev = out[out.length - 1]
      if (prev === undefined) {
        // The installed root was checked at init; expiry is not re-checked so an expired root is still served (agents refuse it themselves).
        doc = checkRootShape(parsed, file)
        verifyThreshold(doc.signed, doc.signatures, doc.signed.roles.root, doc.signed.keys, file)
      } else {
        doc = walkRootChain(prev.doc, [parsed], new Date(0))
      }
      if (doc.signed.version !== v) throw new ImgdistError('DATA_CORRUPT', `holds root version ${doc.signed.version}`)
      out.push(stored(doc, bytes))
    } catch (err) {
      throw new ImgdistError('DATA_CORRUPT', `${file}: ${(err as Error).message}`, { cause: err })
    }
  }
  return out
}

/**
 * `imgdist-index init`: verifies a self-signed root and installs it as the start of the chain.
 * With `force` over an existing catalogue, its state is moved aside first (reinit.ts); `replaced`
 * names where.
 */
export async function installRoot (paths: DataPaths, bytes: Buffer, now: Date, force = false): Promise<{ root: RootDocument, replaced?: string }> {
  const doc = verifySelfSignedRoot(parseSignedYaml(bytes, MAX_ROOT_BYTES, 'root'), now)
  await finishReinit(paths)
  let existing: string[] = []
  try { existing = (await readdir(paths.rootDir)).filter((n) => n.endsWith('.yaml')) } catch {}
  if (existing.length === 0 && !(await exists(paths.indexFile))) {
    await writeFileAtomic(rootFile(paths, doc.signed.version), bytes)
    return { root: doc }
  }
  if (!force) {
    const what = existing.length > 0 ? `a root (${existing.join(', ')})` : 'an index.yaml'
    throw new ImgdistError('ALREADY_INITIALISED', `${paths.dir} already holds ${what}; roots are rotated with PUT /v1/root.yaml (--force replaces the catalogue, keeping the old state aside)`)
  }
  return { root: doc, replaced: await replaceCatalogue(paths, bytes, doc.signed.version, now) }
}
