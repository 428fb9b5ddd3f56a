import { Counter, Gauge, Registry } from 'prom-client'

/** Live numbers of the origin seeder, read at scrape time. */
/** `rejected`: blocks refused under `seeding.egressBudget` (swarm/egress-budget.ts) */
export interface SeederStats { torrents: number, peers: number, uploadSpeed: number, uploaded: number, rejected: number }

/** A gauge with one series per served document (`document="root"`, `"index"`), read at each scrape. */
function documentGauge (registers: Registry[], name: string, help: string, read: () => { root: number, index: number }): void {
  new Gauge({
    name, help, labelNames: ['document'], registers,
    collect () { const v = read(); this.set({ document: 'root' }, v.root); this.set({ document: 'index' }, v.index) }
  })
}

/**
 * Prometheus metrics of one server instance. Each instance has its own Registry (never the
 * global default) so tests can run many servers in one process.
 */
export class IndexMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'method' | 'route' | 'status'>
  readonly inFlight: Gauge<'method'>
  readonly publishes: Counter<'document' | 'result' | 'code'>
  readonly imageUploads: Counter<'result' | 'code'>
  readonly reports: Counter<'result' | 'code'>
  readonly webSeedBytes: Counter
  readonly uploadBytesReceived: Counter

  constructor (opts: { seeder?: () => SeederStats | undefined, tracker?: () => { swarms: number, peers: number }, catalogue?: () => { root: number, index: number }, expires?: () => { root: number, index: number }, watchers?: () => number }) {
    const registers = [this.registry]
    this.requests = new Counter({ name: 'imgdist_index_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'], registers })
    this.inFlight = new Gauge({ name: 'imgdist_index_http_requests_in_flight', help: 'HTTP requests being received or answered', labelNames: ['method'], registers })
    this.publishes = new Counter({ name: 'imgdist_index_publishes_total', help: 'PUT of root.yaml / index.yaml, by result and refusal code', labelNames: ['document', 'result', 'code'], registers })
    this.imageUploads = new Counter({ name: 'imgdist_index_image_uploads_total', help: 'PUT of image bytes and torrents, by result and refusal code', labelNames: ['result', 'code'], registers })
    this.reports = new Counter({ name: 'imgdist_index_reports_total', help: 'agent reports, by result and refusal code', labelNames: ['result', 'code'], registers })
    this.webSeedBytes = new Counter({ name: 'imgdist_index_webseed_bytes_total', help: 'image bytes served over HTTP (web seed and plain download)', registers })
    this.uploadBytesReceived = new Counter({ name: 'imgdist_index_image_upload_bytes_total', help: 'image bytes received by PUT /v1/images', registers })
    const seeder = opts.seeder ?? (() => undefined)
    new Gauge({ name: 'imgdist_index_torrents_seeded', help: 'torrents the origin seeder is seeding', registers, collect () { this.set(seeder()?.torrents ?? 0) } })
    new Gauge({ name: 'imgdist_index_seed_peers', help: 'peers connected to the origin seeder', registers, collect () { this.set(seeder()?.peers ?? 0) } })
    new Gauge({ name: 'imgdist_index_seed_upload_bytes_per_second', help: 'origin seeder upload rate', registers, collect () { this.set(seeder()?.uploadSpeed ?? 0) } })
    new Gauge({ name: 'imgdist_index_seed_uploaded_bytes', help: 'bytes uploaded by the origin seeder since start', registers, collect () { this.set(seeder()?.uploaded ?? 0) } })
    new Gauge({ name: 'imgdist_index_seed_rejected_blocks', help: 'requests for blocks that other peers hold, rejected under seeding.egressBudget since start', registers, collect () { this.set(seeder()?.rejected ?? 0) } })
    const watchers = opts.watchers
    if (watchers !== undefined) {
      new Gauge({ name: 'imgdist_index_watchers', help: 'GETs of index.yaml held open until the next publish (Prefer: wait)', registers, collect () { this.set(watchers()) } })
    }
    const tracker = opts.tracker
    if (tracker !== undefined) {
      new Gauge({ name: 'imgdist_index_tracker_swarms', help: 'swarms known to the built-in tracker', registers, collect () { this.set(tracker().swarms) } })
      new Gauge({ name: 'imgdist_index_tracker_peers', help: 'peers announced to the built-in tracker', registers, collect () { this.set(tracker().peers) } })
    }
    if (opts.catalogue !== undefined) documentGauge(registers, 'imgdist_index_catalogue_version', 'version of the served root and index (0: none)', opts.catalogue)
    // The server serves an expired document on, and agents then refuse it: alert on this before the date.
    if (opts.expires !== undefined) {
      documentGauge(registers, 'imgdist_index_catalogue_expires_seconds', 'Unix time at which the served root and index expire (0: none served)', opts.expires)
    }
  }
}
