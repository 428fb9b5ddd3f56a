import { roughSpan } from '../lib/duration.js'
import { IMAGE_STATES, type ImageState } from '../lib/image-state.js'
import type { DocumentExpiry } from './catalogue-expiry.js'
import type { Fleet, FleetCell, FleetSite } from './fleet.js'

/**
 * GET /: the fleet as one self-contained HTML page (no scripts or assets from elsewhere, every
 * reported string escaped), refreshed by a meta refresh so it works with scripts disabled.
 */

const COLOURS: Record<ImageState, string> = {
  listed: '#6e7781',
  rejected: '#57606a',
  'awaiting-approval': '#bf8700',
  approved: '#0550ae',
  downloading: '#0969da',
  verifying: '#8250df',
  registering: '#8250df',
  registered: '#1a7f37',
  retired: '#8c959f',
  failed: '#cf222e'
}

export function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)
}

export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i] as string}`
}

function ago (iso: string | null, now: Date): string {
  // a report stamped ahead of this clock (a site's clock runs fast) was sent just now, not "5s ago"
  return iso === null ? 'never' : `${roughSpan(Math.max(0, now.getTime() - Date.parse(iso)))} ago`
}

/**
 * A document this close to `expires` is flagged: the margin of the alert docs/index-server.md
 * suggests, as gathering a threshold of endorsers' signatures for a renewal can take days.
 */
const EXPIRY_WARNING_MS = 3 * 86_400_000

function expiryHtml (docs: DocumentExpiry[]): string {
  if (docs.length === 0) return ''
  const lines = docs.map((d) => {
    const when = d.expired ? `expired ${d.expires} (${roughSpan(-d.remainingMs)} ago)` : `expires ${d.expires} (in ${roughSpan(d.remainingMs)})`
    const text = `${d.document} v${d.version} ${when}`
    if (!d.expired && d.remainingMs > EXPIRY_WARNING_MS) return `<div class="exp">${escapeHtml(text)}</div>`
    return `<div class="exp ${d.expired ? 'expired' : 'soon'}"><strong>⚠ ${escapeHtml(text)}</strong>: ${escapeHtml(d.expired ? d.advice : `then ${d.advice}`)}</div>`
  })
  return `<div class="expiry">${lines.join('')}</div>\n`
}

const WAITING: Partial<Record<ImageState, string>> = {
  listed: 'listed, not yet decided',
  rejected: 'rejected by site policy',
  'awaiting-approval': 'waiting for the site admin',
  approved: 'approved, queued',
  retired: 'retired'
}

function cellHtml (cell: FleetCell | undefined): string {
  if (cell === undefined) return '<td class="cell none">—</td>'
  const pct = Math.round(cell.progress * 100)
  const colour = COLOURS[cell.state]
  const title = cell.error !== undefined ? ` title="${escapeHtml(`${cell.error.code}: ${cell.error.message}`)}"` : ''
  const err = cell.error !== undefined ? `<div class="err">${escapeHtml(cell.error.code)}</div>` : ''
  const badge = `<span class="badge" style="background:${colour}">${escapeHtml(cell.state)}</span>`
  const waiting = WAITING[cell.state]
  if (waiting !== undefined) return `<td class="cell"${title}>${badge}<div class="detail gap">${escapeHtml(waiting)}</div>${err}</td>`
  const detail = cell.state === 'downloading'
    ? `${pct}% · ${formatBytes(cell.downRate)}/s · ${cell.peers} peers`
    : cell.seeding ? `seeding · ${formatBytes(cell.upRate)}/s · ${cell.peers} peers` : `${pct}%`
  return `<td class="cell"${title}>${badge}` +
    `<div class="bar"><div style="width:${pct}%;background:${colour}"></div></div><div class="detail">${escapeHtml(detail)}</div>${err}</td>`
}

function siteRow (site: FleetSite, fleet: Fleet, now: Date): string {
  const cls = site.stale ? ' class="stale"' : ''
  const meta = [
    site.agentVersion !== null ? `agent ${site.agentVersion}` : null,
    site.indexVersion !== null ? `index v${site.indexVersion}` : null
  ].filter((x) => x !== null).join(' · ')
  const siteErr = site.error !== undefined ? `<div class="err">${escapeHtml(site.error.code)}: ${escapeHtml(site.error.message)}</div>` : ''
  return `<tr${cls}><th scope="row"><div class="site">${escapeHtml(site.name)}</div><div class="detail">${escapeHtml(meta)}</div>` +
    `<div class="detail">${site.stale ? '<span class="stale-tag">stale</span> ' : ''}seen ${escapeHtml(ago(site.lastSeen, now))}</div>${siteErr}</th>` +
    fleet.images.map((img) => cellHtml(site.images[img.id])).join('') + '</tr>'
}

/** `expiry`: the served documents' (CatalogueExpiry.documents()), shown under the header. */
export function renderFleetPage (fleet: Fleet, opts: { refreshSeconds: number, now: Date, expiry: DocumentExpiry[] }): string {
  const t = fleet.totals
  const cards: Array<[string, string]> = [
    ['sites reporting', `${t.sites - t.staleSites} / ${t.sites}`],
    ['registered', String(t.states.registered ?? 0)],
    ['in progress', String((t.states.downloading ?? 0) + (t.states.verifying ?? 0) + (t.states.registering ?? 0))],
    ['awaiting approval', String(t.states['awaiting-approval'] ?? 0)],
    ['failed', String(t.states.failed ?? 0)],
    ['from peers', formatBytes(t.bytesFromPeers)],
    ['from web seeds', formatBytes(t.bytesFromWebSeeds)],
    ['swarm rate', `${formatBytes(t.downRate)}/s`]
  ]
  const head = fleet.images.map((img) => `<th scope="col"><div class="site">${escapeHtml(img.id)}</div>` +
    `<div class="detail">${escapeHtml(img.version)} · ${formatBytes(img.size)}${img.status !== 'listed' ? ` · ${escapeHtml(img.status)}` : ''}</div></th>`).join('')
  const body = fleet.sites.length === 0
    ? `<tr><td colspan="${fleet.images.length + 1}" class="empty">No sites yet. Register one with <code>imgdist-index sites add NAME PUBKEY</code>.</td></tr>`
    : fleet.sites.map((s) => siteRow(s, fleet, opts.now)).join('\n')
  const legend = IMAGE_STATES.map((s) => `<span class="badge" style="background:${COLOURS[s]}">${s}</span>`).join(' ')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${opts.refreshSeconds}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imgdist fleet · ${escapeHtml(fleet.catalogue)}</title>
<style>
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 24px;display:flex;align-items:baseline;gap:16px}
header h1{font-size:20px;margin:0}header .sub{color:#afb8c1}
main{padding:16px 24px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.card{flex:1 1 auto;white-space:nowrap;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:90px}
.card .k{color:#57606a;font-size:12px;text-transform:uppercase;letter-spacing:.04em}.card .v{font-size:20px;font-weight:600}
table{border-collapse:separate;border-spacing:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;overflow:hidden;width:100%}
th,td{padding:8px 12px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
thead th{background:#f6f8fa;font-weight:600}
tbody th{font-weight:400;width:220px}
.site{font-weight:600}.detail{color:#57606a;font-size:12px}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.bar{height:6px;background:#eaeef2;border-radius:3px;margin:6px 0 3px;overflow:hidden}.bar div{height:100%}
.cell.none{color:#8c959f;text-align:center}
tr.stale th,tr.stale td{opacity:.55}
.stale-tag{background:#fff8c5;color:#7d4e00;border:1px solid #d4a72c;border-radius:4px;padding:0 4px}
.err{color:#cf222e;font-size:12px;font-weight:600}
.detail.gap{margin-top:6px}
.legend{margin-top:14px;color:#57606a;font-size:12px}
.empty{text-align:center;color:#57606a;padding:24px}
.expiry{display:flex;flex-direction:column;gap:6px;margin-bottom:12px}.exp{color:#57606a;font-size:12px}
.exp.soon,.exp.expired{font-size:14px;border-radius:8px;padding:8px 14px;border:1px solid}
.exp.soon{background:#fff8c5;color:#7d4e00;border-color:#d4a72c}.exp.expired{background:#ffebe9;color:#82071e;border-color:#ff8182}
</style></head>
<body><header><h1>imgdist fleet</h1><span class="sub">catalogue ${escapeHtml(fleet.catalogue)} · index ${fleet.indexVersion === null ? 'not published' : `v${fleet.indexVersion}`} · ${escapeHtml(fleet.generatedAt.replace(/\.\d+Z$/, 'Z'))}</span></header>
<main>
${expiryHtml(opts.expiry)}<div class="cards">${cards.map(([k, v]) => `<div class="card"><div class="k">${escapeHtml(k)}</div><div class="v">${escapeHtml(v)}</div></div>`).join('')}</div>
<table><thead><tr><th scope="col">site</th>${head}</tr></thead>
<tbody>
${body}
</tbody></table>
<div class="legend">${legend} · a site is <span class="stale-tag">stale</span> after ${fleet.staleAfterSeconds}s without a report · refreshes every ${opts.refreshSeconds}s · <a href="/v1/fleet">JSON</a></div>
</main></body></html>
`
}
