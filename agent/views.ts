import type { ImageState } from '../lib/image-state.js'
import type { TorrentHandle } from '../swarm/torrent-session.js'
import type { ErrorInfo, ImageRecord, TargetState } from './state-store.js'

/** What the API, the CLI, metrics and reports show of one image. */
export interface ImageView {
  catalogue: string
  id: string
  name: string
  version: string
  state: ImageState
  reason?: string
  progress: number
  size: number
  downRate: number
  upRate: number
  peers: number
  bytesFromPeers: number
  bytesFromWebSeeds: number
  bytesUploaded: number
  /** bytes this process fetched (after a restart: what the resume did not already have) */
  bytesThisRun: number
  resumedBytes: number
  hashFailures: number
  bannedPeers: string[]
  seeding: boolean
  cached: boolean
  retries: number
  nextAttemptAt?: string
  error?: ErrorInfo
  targets: Record<string, TargetState>
  updatedAt: string
}

/** The reason shown for an image of a catalogue the config no longer subscribes to (Reconciler: nothing is done with it). */
export const UNSUBSCRIBED_REASON = 'its catalogue is no longer among the config\'s subscriptions: nothing more is done with it (download, retry, registration, refresh, seeding) until it is subscribed again; what its targets hold stays there'

/** `subscribed`: whether the config subscribes to the image's catalogue (else the reason says what that means). */
export function imageView (rec: ImageRecord, h: TorrentHandle | undefined, subscribed = true): ImageView {
  const live = h !== undefined && !h.destroyed
  const reason = !subscribed && rec.state !== 'retired' ? UNSUBSCRIBED_REASON : rec.reason
  return {
    catalogue: rec.catalogue, id: rec.id, name: rec.entry.name, version: rec.entry.version, state: rec.state,
    ...(reason !== undefined ? { reason } : {}),
    progress: rec.state === 'downloading' && live ? h.progress : rec.progress,
    size: rec.entry.size,
    downRate: live ? h.downloadSpeed : 0,
    upRate: live ? h.uploadSpeed : 0,
    peers: live ? h.numPeers : 0,
    bytesFromPeers: rec.bytesFromPeers,
    bytesFromWebSeeds: rec.bytesFromWebSeeds,
    bytesUploaded: rec.bytesUploaded,
    bytesThisRun: h !== undefined ? h.counters.bytesFromPeers + h.counters.bytesFromWebSeeds : 0,
    resumedBytes: h?.counters.resumedBytes ?? 0,
    hashFailures: h?.counters.hashFailures ?? 0,
    bannedPeers: h?.counters.bannedPeers ?? [],
    seeding: live && h.complete && rec.cached,
    cached: rec.cached,
    retries: rec.retries,
    ...(rec.nextAttemptAt !== undefined && rec.state === 'failed' ? { nextAttemptAt: new Date(rec.nextAttemptAt).toISOString() } : {}),
    ...(rec.error !== undefined ? { error: rec.error } : {}),
    targets: rec.targets,
    updatedAt: rec.updatedAt
  }
}
