import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { request, type Dispatcher } from 'undici'
import { rfc3339 } from '../lib/duration.js'
import { formatErrorEnvelope, parseErrorEnvelope } from '../lib/error-envelope.js'
import { ConfigError } from '../lib/errors.js'
import { decodeSecretKey, type KeyPair } from '../lib/keys.js'
import { signReport, type ReportImage, type ReportSigned } from '../lib/report.js'
import type { PollStatus } from './catalogue.js'
import type { ImageView } from './views.js'

/** Sends a signed status report to the index server every interval; failures are logged, never fatal. */

export function reportUrl (url: string): string {
  return /\/reports\/?$/.test(url) ? url : `${url.replace(/\/+$/, '')}/v1/reports`
}

export function buildReport (site: string, agentVersion: string, polls: PollStatus[], images: ImageView[], now: Date): ReportSigned {
  const err = (e?: { code: string, message: string }): { error?: { code: string, message: string } } =>
    e === undefined ? {} : { error: { code: e.code.slice(0, 64), message: e.message.slice(0, 2048) } }
  return {
    type: 'report', site, sent: rfc3339(now), agentVersion,
    catalogues: polls.filter((p) => p.name !== '').slice(0, 64).map((p) => ({
      name: p.name, rootVersion: p.rootVersion, indexVersion: p.indexVersion,
      ...(p.lastPoll !== undefined ? { lastPoll: rfc3339(new Date(p.lastPoll)) } : {}), ...err(p.error)
    })),
    images: images.slice(0, 10_000).map((i): ReportImage => ({
      catalogue: i.catalogue, id: i.id, version: i.version.slice(0, 128), state: i.state,
      progress: Math.min(1, Math.max(0, i.progress)), size: i.size,
      bytesFromPeers: i.bytesFromPeers, bytesFromWebSeeds: i.bytesFromWebSeeds, bytesUploaded: i.bytesUploaded,
      downRate: i.downRate, upRate: i.upRate, peers: i.peers, seeding: i.seeding, ...err(i.error)
    }))
  }
}

export class Reporter {
  #timer?: NodeJS.Timeout
  #key?: KeyPair
  #inflight?: Promise<void>
  lastError?: string
  /** when the current run of failures began */
  lastErrorAt?: string
  lastSent?: string

  constructor (private readonly opts: {
    url: string, siteKey: string, intervalMs: number, site: string, agentVersion: string, http: Dispatcher, log: Logger,
    snapshot: () => { polls: PollStatus[], images: ImageView[] }
  }) {}

  async start (): Promise<void> {
    try { this.#key = decodeSecretKey(await readFile(this.opts.siteKey, 'utf8')) } catch (err) {
      throw new ConfigError(`report.siteKey ${this.opts.siteKey}: ${(err as Error).message}`)
    }
    this.#timer = setInterval(() => { void this.sendNow() }, this.opts.intervalMs)
    setTimeout(() => { void this.sendNow() }, 500).unref()
  }

  sendNow (): Promise<void> {
    this.#inflight ??= this.#send().finally(() => { this.#inflight = undefined })
    return this.#inflight
  }

  async #send (): Promise<void> {
    if (this.#key === undefined) return
    const snap = this.opts.snapshot()
    const report = signReport(buildReport(this.opts.site, this.opts.agentVersion, snap.polls, snap.images, new Date()), this.#key)
    try {
      const res = await request(reportUrl(this.opts.url), {
        dispatcher: this.opts.http, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report)
      })
      const text = await res.body.text()
      // as an operator reads it in `imgdist-agent status`: "HTTP 403 SITE_UNKNOWN: site ... is
      // not registered here; the index operator runs: ...", not the raw JSON body
      if (res.statusCode >= 300) throw new Error(formatErrorEnvelope(parseErrorEnvelope(res.statusCode, text)))
      this.lastSent = report.signed.sent
      delete this.lastError
      delete this.lastErrorAt
    } catch (err) {
      this.lastError = (err as Error).message
      this.lastErrorAt ??= new Date().toISOString()
      this.opts.log.warn({ err: this.lastError }, 'status report not delivered')
    }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    await this.#inflight
  }
}
