import { roughSpan } from '../lib/duration.js'
import type { AgentStatus, TargetView } from './api.js'
import type { PeerInfo } from '../swarm/swarm.js'
import type { ImageView } from './views.js'

/** Human-readable tables for the operator CLI. */

export function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n') + '\n'
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i] ?? 'B'}`
}

const rate = (n: number): string => `${bytes(Math.round(n))}/s`

/**
 * Per target: its state and its own id of the image (the Glance image id), e.g. `cloud-a
 * registered 5c1d… (adopted)`; `(still shows 1.0)` while a re-signed listing is not written there yet,
 * `(still shows the former target settings)` after a reload or restart with other settings.
 */
export function formatTargets (targets: ImageView['targets']): string {
  const parts = Object.entries(targets ?? {}).map(([name, t]) =>
    `${name} ${t.state}${t.ref !== undefined ? ` ${t.ref}` : ''}${t.adopted === true ? ' (adopted)' : ''}` +
    (t.outdated === undefined ? '' : t.outdated.cause === 'settings' ? ' (still shows the former target settings)' : ` (still shows ${t.outdated.version})`))
  return parts.length === 0 ? '-' : parts.join('; ')
}

function detail (i: ImageView): string {
  if (i.error !== undefined) return `${i.error.code}: ${i.error.message}`
  // a retire that failed leaves the image in its state with the target's error
  const te = Object.entries(i.targets ?? {}).find(([, t]) => t.error !== undefined)
  if (te !== undefined && te[1].error !== undefined) return `${te[0]}: ${te[1].error.code}: ${te[1].error.message}`
  return i.reason ?? ''
}

export function formatImages (images: ImageView[]): string {
  if (images.length === 0) return 'no images\n'
  return table(['CATALOGUE', 'ID', 'VERSION', 'STATE', 'PROGRESS', 'SIZE', 'DOWN', 'UP', 'PEERS', 'FROM PEERS', 'FROM WEBSEEDS', 'TARGETS', 'DETAIL'],
    images.map((i) => [
      i.catalogue, i.id, i.version, i.state + (i.seeding ? ' (seeding)' : ''), `${(i.progress * 100).toFixed(1)}%`, bytes(i.size),
      rate(i.downRate), rate(i.upRate), String(i.peers), bytes(i.bytesFromPeers), bytes(i.bytesFromWebSeeds),
      formatTargets(i.targets), detail(i)
    ]))
}

function targetRow (t: TargetView): string[] {
  const s = (k: string): string | undefined => typeof t[k] === 'string' ? t[k] as string : undefined
  const where = s('endpoint') ?? s('authUrl') ?? s('path') ?? ''
  const err = (t.lastError ?? t.recoverError) as { code?: string, message?: string, at?: string } | undefined
  // an error followed by a success (the operator's fix took) says so, rather than alarming for ever
  const okAt = s('lastOkAt')
  const since = okAt !== undefined && err?.at !== undefined && okAt > err.at ? `; ok since ${okAt}` : ''
  return [t.name, t.type, where, s('credentials') ?? '', s('lastImageId') ?? s('lastImage') ?? '-',
    err !== undefined ? `${err.code ?? ''}: ${err.message ?? ''}${err.at !== undefined ? ` (${err.at}${since})` : ''}` : '']
}

/** Whether the index server hears of this site: a report that is not delivered shows here, not only in the log. */
function formatReport (r: AgentStatus['report']): string {
  if (r === undefined) return 'report: off (no report: section in the config)'
  const last = r.lastSent !== undefined ? `last delivered ${r.lastSent}` : 'none delivered yet'
  return r.lastError !== undefined
    ? `report: NOT DELIVERED since ${r.lastErrorAt ?? '?'}: ${r.lastError} (${last})`
    : `report: to ${r.url}, ${last}`
}

/** One line after the last reload (SIGHUP), none before: whether it took, and what waits for a restart. */
function formatReload (r: AgentStatus['reload']): string {
  if (r === undefined) return ''
  const restart = r.needRestart.length > 0 ? `; a restart is needed for: ${r.needRestart.join(', ')}` : ''
  if (r.error !== undefined) return `config: reload REFUSED at ${r.at} (${r.error.code}: ${r.error.message}); the running config is kept${restart}\n`
  return `config: reloaded at ${r.at}${restart}\n`
}

/** `2026-12-05T10:00:00Z (in 13d)`, or `EXPIRED 2h ago (2026-12-05T10:00:00Z)` once the catalogue is out of force. */
export function formatExpiry (expires: string | undefined, now: Date): string {
  if (expires === undefined) return '-'
  const left = Date.parse(expires) - now.getTime()
  return left > 0 ? `${expires} (in ${roughSpan(left)})` : `EXPIRED ${roughSpan(left)} ago (${expires})`
}

export function formatStatus (s: AgentStatus, now = new Date()): string {
  const state = s.paused ? `PAUSED${s.pausedAt !== undefined ? ` since ${s.pausedAt}` : ''}, running since ${s.startedAt}` : `running since ${s.startedAt}`
  const head = `site ${s.site}  agent ${s.agentVersion}  ${state}  torrent port ${s.torrentPort}\n` +
    `swarm: ${s.peers} peers${s.webSeeds !== undefined && s.webSeeds > 0 ? ` + ${s.webSeeds} web seeds` : ''}, down ${rate(s.downRate)}, up ${rate(s.upRate)}, ` +
    `DHT ${s.dht === undefined ? 'off' : `${s.dht.nodes} nodes${s.dht.port !== undefined ? ` (UDP ${s.dht.port})` : ''}`}\n` +
    `images: ${Object.entries(s.images).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}\n` +
    `${formatReport(s.report)}\n${formatReload(s.reload)}\n`
  // WATCH yes: the index server holds our poll open and answers it at the next publish
  // EXPIRES is the earlier of the root's and the index's: an alert's date, read off before it falls
  const cats = table(['CATALOGUE', 'ROOT', 'INDEX', 'WATCH', 'EXPIRES', 'LAST POLL', 'LAST SUCCESS', 'ERROR'],
    s.catalogues.map((c) => [c.name, `v${c.rootVersion}`, `v${c.indexVersion}`, c.watching ? 'yes' : 'no', formatExpiry(c.expires, now), c.lastPoll ?? '-', c.lastSuccess ?? '-',
      c.error !== undefined ? `${c.error.code}: ${c.error.message}` : '']))
  const targets = (s.targets ?? []).length === 0
    ? ''
    : '\n' + table(['TARGET', 'TYPE', 'WHERE', 'CREDENTIALS', 'LAST IMAGE', 'LAST ERROR'], (s.targets ?? []).map(targetRow))
  return head + cats + targets
}

export function formatPeers (peers: PeerInfo[]): string {
  if (peers.length === 0) return 'no peers\n'
  return table(['INFOHASH', 'PEER', 'TYPE', 'FOUND', 'CLIENT', 'EXTENSIONS', 'DOWNLOADED', 'UPLOADED', 'DOWN', 'UP'],
    peers.map((p) => [p.infoHash.slice(0, 12), p.address, p.type, p.found ?? '-', p.client ?? '-', p.extensions !== undefined && p.extensions.length > 0 ? p.extensions.join(',') : '-',
      bytes(p.downloaded), bytes(p.uploaded), rate(p.downSpeed), rate(p.upSpeed)]))
}
