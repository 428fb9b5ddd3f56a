import type { ImageState } from '../lib/image-state.js'
import type { IndexSigned } from '../lib/schema.js'
import type { StoredReport } from './report-store.js'

/** GET /v1/fleet: every registered site × every image of the catalogue, from the newest reports. */

export interface FleetCell {
  state: ImageState
  progress: number
  bytesFromPeers: number
  bytesFromWebSeeds: number
  bytesUploaded: number
  downRate: number
  upRate: number
  peers: number
  seeding: boolean
  error?: { code: string, message: string }
}

export interface FleetSite {
  name: string
  lastSeen: string | null
  stale: boolean
  agentVersion: string | null
  rootVersion: number | null
  indexVersion: number | null
  error?: { code: string, message: string }
  images: Record<string, FleetCell>
}

export interface FleetImage { id: string, name: string, version: string, size: number, status: 'listed' | 'revoked' | 'unlisted' }

export interface Fleet {
  generatedAt: string
  catalogue: string
  indexVersion: number | null
  staleAfterSeconds: number
  images: FleetImage[]
  sites: FleetSite[]
  totals: {
    sites: number
    staleSites: number
    states: Partial<Record<ImageState, number>>
    bytesFromPeers: number
    bytesFromWebSeeds: number
    bytesUploaded: number
    downRate: number
    upRate: number
  }
}

export function buildFleet (p: { catalogue: string, index: IndexSigned | undefined, siteNames: string[], reports: StoredReport[], now: Date, staleAfterMs: number }): Fleet {
  const images: FleetImage[] = (p.index?.images ?? []).map((i) => ({ id: i.id, name: i.name, version: i.version, size: i.size, status: 'listed' as const }))
  const known = new Set(images.map((i) => i.id))
  const revoked = new Set((p.index?.revoked ?? []).map((r) => r.id))
  const bySite = new Map(p.reports.map((r) => [r.report.site, r]))
  const totals: Fleet['totals'] = { sites: 0, staleSites: 0, states: {}, bytesFromPeers: 0, bytesFromWebSeeds: 0, bytesUploaded: 0, downRate: 0, upRate: 0 }
  const sites: FleetSite[] = []
  // Registered sites only: a report outlives `sites remove` in LevelDB until the server prunes it.
  for (const name of [...new Set(p.siteNames)].sort()) {
    const stored = bySite.get(name)
    const lastSeen = stored?.receivedAt ?? null
    const stale = lastSeen === null || p.now.getTime() - Date.parse(lastSeen) > p.staleAfterMs
    const cat = stored?.report.catalogues.find((c) => c.name === p.catalogue)
    const site: FleetSite = {
      name,
      lastSeen,
      stale,
      agentVersion: stored?.report.agentVersion ?? null,
      rootVersion: cat?.rootVersion ?? null,
      indexVersion: cat?.indexVersion ?? null,
      ...(cat?.error !== undefined ? { error: cat.error } : {}),
      images: {}
    }
    for (const img of stored?.report.images ?? []) {
      if (img.catalogue !== p.catalogue) continue
      if (!known.has(img.id)) {
        known.add(img.id)
        images.push({ id: img.id, name: img.id, version: img.version, size: img.size, status: revoked.has(img.id) ? 'revoked' : 'unlisted' })
      }
      const { state, progress, bytesFromPeers, bytesFromWebSeeds, bytesUploaded, downRate, upRate, peers, seeding, error } = img
      site.images[img.id] = { state, progress, bytesFromPeers, bytesFromWebSeeds, bytesUploaded, downRate, upRate, peers, seeding, ...(error !== undefined ? { error } : {}) }
      totals.states[state] = (totals.states[state] ?? 0) + 1
      totals.bytesFromPeers += bytesFromPeers
      totals.bytesFromWebSeeds += bytesFromWebSeeds
      totals.bytesUploaded += bytesUploaded
      if (!stale) { totals.downRate += downRate; totals.upRate += upRate }
    }
    totals.sites += 1
    if (stale) totals.staleSites += 1
    sites.push(site)
  }
  return {
    generatedAt: p.now.toISOString(),
    catalogue: p.catalogue,
    indexVersion: p.index?.version ?? null,
    staleAfterSeconds: Math.round(p.staleAfterMs / 1000),
    images,
    sites,
    totals
  }
}
