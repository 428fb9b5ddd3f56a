import type { IndexDocument, RootDocument } from '../lib/schema.js'

/**
 * What a subscription has in force (a catalogue whose root and index passed DESIGN.md §3) and
 * what the operator sees of it (agent/poller.ts keeps both up to date).
 */

export interface Catalogue {
  name: string
  root: RootDocument
  index: IndexDocument
  digest: string
  signers: string[]
  /** the URL the index was fetched from: torrents are relative to it */
  baseUrl: string
}

export interface PollStatus {
  name: string
  url: string
  rootVersion: number
  indexVersion: number
  lastPoll?: string
  lastSuccess?: string
  error?: { code: string, message: string }
  pollErrors: number
  /** a request is held open at the index server (or the last one was held) until a publish or its wait */
  watching: boolean
  /**
   * When the accepted catalogue goes out of force (RFC 3339): the earlier of its root's and its
   * index's expires. Kept once that has passed, so status and metrics show how long ago it lapsed;
   * absent until a catalogue is accepted.
   */
  expires?: string
}
