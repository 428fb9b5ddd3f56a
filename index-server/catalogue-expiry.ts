import type { FastifyBaseLogger } from 'fastify'
import { MAX_TIMER_MS } from '../lib/duration-schema.js'
import { rfc3339Millis } from '../lib/duration.js'
import type { CatalogueStore } from './catalogue-store.js'

export type ServedDocument = 'root' | 'index'

/** One served document's expiry at one moment, as the fleet page shows it. */
export interface DocumentExpiry {
  document: ServedDocument
  version: number
  /** as signed */
  expires: string
  /** until `expires`; negative once past */
  remainingMs: number
  expired: boolean
  /** what the lapse means and who must act */
  advice: string
}

/** What each document's lapse means and who can end it: the warning tells the operator whom to call. */
const ADVICE: Record<ServedDocument, string> = {
  index: 'agents refuse it (EXPIRED) and start nothing new from it: the endorsers must sign and publish a renewed index (README, "Renew before expires")',
  root: 'agents refuse every index under it (EXPIRED): the root key holders must sign and publish the next root version (README, "rotate root keys")'
}

/**
 * When the served root and index expire. The server goes on serving them past `expires` (only
 * the endorsers can renew, and agents refuse an expired document themselves), so what it can do
 * is make the date visible before it falls (the metric, /healthz) and say once, in the log, when
 * it has: at the moment it falls, or at start-up for a document that already had.
 */
export class CatalogueExpiry {
  readonly #catalogue: CatalogueStore
  readonly #log: FastifyBaseLogger
  readonly #now: () => Date
  #timer?: NodeJS.Timeout
  #closed = false
  /** `root v2`, `index v7`: each document version is warned of once, however often it is checked */
  readonly #warned = new Set<string>()

  constructor (catalogue: CatalogueStore, deps: { log: FastifyBaseLogger, now: () => Date }) {
    this.#catalogue = catalogue
    this.#log = deps.log
    this.#now = deps.now
    catalogue.onChange(() => { this.#check() })
  }

  /** Warns of what has already expired and arms the timer for the next expiry. */
  start (): void { this.#check() }

  /**
   * Epoch milliseconds at which the served document expires, undefined when none is served. An
   * unreadable date (never accepted at publish) reads as 0, expired, as lib/trust.ts counts it.
   */
  expiresAt (doc: ServedDocument): number | undefined {
    const served = this.#served(doc)
    return served === undefined ? undefined : rfc3339Millis(served.doc.signed.expires) ?? 0
  }

  /** Each served document's expiry now, root first; an index not yet published is left out. */
  documents (): DocumentExpiry[] {
    const now = this.#now().getTime()
    const out: DocumentExpiry[] = []
    for (const document of ['root', 'index'] as const) {
      const served = this.#served(document)
      const at = this.expiresAt(document)
      if (served === undefined || at === undefined) continue
      out.push({ document, version: served.version, expires: served.doc.signed.expires, remainingMs: at - now, expired: at <= now, advice: ADVICE[document] })
    }
    return out
  }

  /** The served documents past their `expires` now. */
  expired (): ServedDocument[] {
    return this.documents().filter((d) => d.expired).map((d) => d.document)
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }

  #check (): void {
    clearTimeout(this.#timer)
    if (this.#closed) return
    for (const doc of this.expired()) this.#warn(doc)
    const now = this.#now().getTime()
    const next = (['root', 'index'] as const).map((d) => this.expiresAt(d)).filter((at): at is number => at !== undefined && at > now)
    if (next.length === 0) return
    // a later expiry is checked again when this timer fires
    this.#timer = setTimeout(() => { this.#check() }, Math.min(MAX_TIMER_MS, Math.min(...next) - now))
    this.#timer.unref()
  }

  #served (doc: ServedDocument): { version: number, doc: { signed: { expires: string } } } | undefined {
    return doc === 'root' ? this.#catalogue.root : this.#catalogue.index
  }

  #warn (doc: ServedDocument): void {
    const served = this.#served(doc)
    if (served === undefined) return
    const what = `${doc === 'root' ? 'trusted root' : 'index'} v${served.version}`
    if (this.#warned.has(what)) return
    this.#warned.add(what)
    const expires = served.doc.signed.expires
    this.#log.warn({ catalogue: this.#catalogue.name, document: doc, version: served.version, expires },
      `the served ${what} of catalogue "${this.#catalogue.name}" expired at ${expires}; ${ADVICE[doc]}`)
  }
}
