import { Gauge, Registry } from 'prom-client'
import { IMAGE_STATES } from '../lib/image-state.js'
import type { ImageView } from './views.js'
import type { PollStatus } from './catalogue.js'

/** Prometheus metrics computed from the agent's state at scrape time (its own Registry, not the global one). */
export function createMetrics (src: { images: () => ImageView[], polls: () => PollStatus[], peers: () => number, webSeeds: () => number, lastReport?: () => string | undefined, verificationFailures: () => number, paused: () => boolean, dhtNodes?: () => number | undefined, targets?: () => string[] }): Registry {
  const registry = new Registry()
  new Gauge({
    name: 'imgdist_agent_images', help: 'Images by state', labelNames: ['state'], registers: [registry],
    collect () {
      const imgs = src.images()
      for (const s of IMAGE_STATES) this.set({ state: s }, imgs.filter((i) => i.state === s).length)
    }
  })
  new Gauge({
    name: 'imgdist_agent_bytes_downloaded', help: 'Bytes downloaded, by source (peers or webseeds)', labelNames: ['source'], registers: [registry],
    collect () {
      const imgs = src.images()
      this.set({ source: 'peers' }, imgs.reduce((s, i) => s + i.bytesFromPeers, 0))
      this.set({ source: 'webseeds' }, imgs.reduce((s, i) => s + i.bytesFromWebSeeds, 0))
    }
  })
  new Gauge({
    name: 'imgdist_agent_bytes_uploaded', help: 'Bytes uploaded to other peers', registers: [registry],
    collect () { this.set(src.images().reduce((s, i) => s + i.bytesUploaded, 0)) }
  })
  new Gauge({ name: 'imgdist_agent_peers', help: 'Connected BitTorrent peers', registers: [registry], collect () { this.set(src.peers()) } })
  new Gauge({ name: 'imgdist_agent_web_seeds', help: 'Web seeds (BEP 19) that sent bytes to running torrents', registers: [registry], collect () { this.set(src.webSeeds()) } })
  // an index server that stops hearing from a site shows here, at the site, as well as in its fleet view
  const lastReport = src.lastReport
  if (lastReport !== undefined) {
    new Gauge({
      name: 'imgdist_agent_last_report_seconds', help: 'Unix time of the last status report the index server accepted (0: none yet)', registers: [registry],
      collect () { const at = lastReport(); this.set(at !== undefined ? Date.parse(at) / 1000 : 0) }
    })
  }
  new Gauge({
    name: 'imgdist_agent_piece_hash_failures', help: 'Pieces that failed their sha1 and were discarded', registers: [registry],
    collect () { this.set(src.images().reduce((s, i) => s + i.hashFailures, 0)) }
  })
  // registered only with the DHT on: an unlabelled gauge that is never set still reads 0
  const dhtNodes = src.dhtNodes
  if (dhtNodes !== undefined) {
    new Gauge({
      name: 'imgdist_agent_dht_nodes', help: 'Nodes in the DHT routing table (absent when the DHT is off)', registers: [registry],
      collect () { this.set(dhtNodes() ?? 0) }
    })
  }
  // a pause outlasts restarts, so one forgotten after a maintenance window should be alertable
  new Gauge({ name: 'imgdist_agent_paused', help: '1 while downloads are paused (imgdist-agent pause), else 0', registers: [registry], collect () { this.set(src.paused() ? 1 : 0) } })
  new Gauge({ name: 'imgdist_agent_verification_failures', help: 'Whole-file sha512/size mismatches', registers: [registry], collect () { this.set(src.verificationFailures()) } })
  new Gauge({
    name: 'imgdist_agent_poll_errors', help: 'Failed catalogue polls since start', labelNames: ['catalogue'], registers: [registry],
    collect () { for (const p of src.polls()) this.set({ catalogue: p.name }, p.pollErrors) }
  })
  // alertable before it bites: an expired catalogue is refused and nothing new is started from it
  new Gauge({
    name: 'imgdist_agent_catalogue_expires_seconds', help: 'Unix time at which the accepted catalogue goes out of force: the earlier of its root and index expires (absent until one is accepted)', labelNames: ['catalogue'], registers: [registry],
    collect () { for (const p of src.polls()) if (p.expires !== undefined) this.set({ catalogue: p.name }, Date.parse(p.expires) / 1000) }
  })
  new Gauge({
    name: 'imgdist_agent_last_successful_poll_seconds', help: 'Unix time of the last successful poll', labelNames: ['catalogue'], registers: [registry],
    collect () { for (const p of src.polls()) if (p.lastSuccess !== undefined) this.set({ catalogue: p.name }, Date.parse(p.lastSuccess) / 1000) }
  })
  // A failed retirement or refresh leaves the image `registered` or `retired` with the error on
  // the target's own line: imgdist_agent_images{state="failed"} does not count it, these do.
  const perTarget = (pick: (t: ImageView['targets'][string]) => boolean): (this: Gauge<'target'>) => void => function (this: Gauge<'target'>): void {
    const imgs = src.images()
    const names = new Set([...(src.targets?.() ?? []), ...imgs.flatMap((i) => Object.keys(i.targets))])
    for (const name of names) this.set({ target: name }, imgs.filter((i) => { const l = i.targets[name]; return l !== undefined && pick(l) }).length)
  }
  new Gauge({
    name: 'imgdist_agent_target_errors', help: 'Images whose line for this target carries an error (a registration, retirement or refresh that failed; retried)', labelNames: ['target'], registers: [registry],
    collect: perTarget((l) => l.error !== undefined)
  })
  new Gauge({
    name: 'imgdist_agent_target_outdated', help: 'Registered images whose metadata in this target still shows an earlier listing of the same bytes or the target\'s former settings', labelNames: ['target'], registers: [registry],
    collect: perTarget((l) => l.outdated !== undefined)
  })
  return registry
}
