import { request } from 'undici'
import { formatErrorEnvelope, parseErrorEnvelope } from '../lib/error-envelope.js'
import { ImgdistError, UsageError } from '../lib/errors.js'
import type { AgentStatus, PauseResult } from './api.js'
import type { PeerInfo } from '../swarm/swarm.js'
import { formatImages, formatPeers, formatStatus } from './format.js'
import type { ImageView } from './views.js'

/** `imgdist-agent status|images|peers|approve ID|retry ID|pause|resume`: a client of the agent's HTTP API. */

export const CLI_USAGE = `NAME
    imgdist-agent - fetch endorsed VM images from peer sites, prove them, register them here

SYNOPSIS
    imgdist-agent run --config FILE
    imgdist-agent status|images|peers|pause|resume [--api URL] [--json]
    imgdist-agent approve|retry ID [--api URL] [--json]
    imgdist-agent --help | --version

DESCRIPTION
    The agent runs at each site, under systemd (deploy/imgdist-agent.service). It watches the
    catalogues it subscribes to (a request held open at the index server, which answers it
    when a new index is published; plain polls every pollInterval elsewhere), verifies their
    signatures against the pinned root, applies the site's approval policy, downloads approved
    images over BitTorrent from peer sites, the origin and web seeds, checks the bytes against
    the signed sha512, registers them in its targets (Glance, or a directory) and keeps
    seeding them to other sites. Every command but
    run is a client of a running agent's HTTP API.

COMMANDS
    run          Run the agent. FILE is YAML (deploy/agent.example.yaml shows and explains
                 every field; docs/agent.md walks through a site's set-up); it is checked
                 at start and every bad field is named. SIGTERM or SIGINT drain and exit 0;
                 SIGHUP re-reads FILE and applies policy, cache, retry and log settings
                 and Glance target settings (nameTemplate, properties, tags, visibility,
                 adoptExisting, maxUploadBytesPerSecond) at once; the images a Glance
                 target registered are then updated to them. Other changes are logged as
                 needing a restart; a bad FILE is refused and the running config kept.
                 A target added to FILE (then a restart) gets the images the site holds
                 already that policy still approves, from the cache if they are there.
    status       catalogues (root and index versions, watching, expiry, last poll, errors),
                 swarm rates, paused, the last config reload (refused, or what of it
                 waits for a restart)
    images       per image: state, progress, rates, peers, bytes from peers and web seeds,
                 last error
    peers        connected peers and web seeds
    approve ID   let image ID download (policy.approval: manual), or go to the targets
                 added to the config since it was registered
    retry ID     retry a failed image now instead of after its backoff
    pause        stop downloading; finished images keep seeding. The pause is saved and
                 outlasts restarts until resume. An agent paused already stays as it
                 is, and the command says since when.
    resume       download again (an agent that is not paused: says so, changes nothing)

OPTIONS
    --config FILE   the agent's config (run)
    --api URL       the agent's API (default http://127.0.0.1:7800, or $IMGDIST_AGENT_API)
    --json          machine-readable output
    --help, -h      this page (after any command too)
    --version, -V   the agent's version

ENVIRONMENT
    IMGDIST_AGENT_API   default for --api
    OS_CLOUD, OS_CLIENT_CONFIG_FILE, OS_AUTH_URL, ...   Glance targets: where their
                        credentials come from when the config does not say (docs/glance.md)

EXIT STATUS
    0 success; 1 failure (agent unreachable, unknown image, an action refused: POLICY_REJECTED,
    NOT_FAILED; a runtime error, e.g. LISTEN_FAILED: a port in use); 2 bad usage or an invalid
    config.
`

/** What a usage error prints after its one line: the synopsis, not the whole page. */
export const CLI_SYNOPSIS = `usage: imgdist-agent run --config FILE
       imgdist-agent status|images|peers|pause|resume [--api URL] [--json]
       imgdist-agent approve|retry ID [--api URL] [--json]
"imgdist-agent --help" describes every command.
`

export interface CliIo { out: (s: string) => void, env: Record<string, string | undefined> }

interface Parsed { cmd: string, arg?: string, api: string, json: boolean }

export function parseCliArgs (argv: string[], env: CliIo['env']): Parsed {
  let api = env.IMGDIST_AGENT_API ?? 'http://127.0.0.1:7800'
  let json = false
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--json') json = true
    else if (a === '--api') { const v = argv[++i]; if (v === undefined) throw new UsageError('--api needs a URL'); api = v } else if (a.startsWith('--api=')) api = a.slice(6)
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`)
    else rest.push(a)
  }
  const [cmd, arg, extra] = rest
  if (cmd === undefined) throw new UsageError('missing command')
  if (!['status', 'images', 'peers', 'approve', 'retry', 'pause', 'resume'].includes(cmd)) throw new UsageError(`unknown command "${cmd}"`)
  if ((cmd === 'approve' || cmd === 'retry') && arg === undefined) throw new UsageError(`${cmd} needs an image ID`)
  if ((cmd !== 'approve' && cmd !== 'retry' && arg !== undefined) || extra !== undefined) throw new UsageError(`unexpected argument "${extra ?? arg ?? ''}"`)
  if (!/^https?:\/\//.test(api)) throw new UsageError(`--api must be an http URL, got "${api}"`)
  return { cmd, ...(arg !== undefined ? { arg } : {}), api: api.replace(/\/+$/, ''), json }
}

async function call (method: 'GET' | 'POST', url: string): Promise<unknown> {
  let res
  try { res = await request(url, { method, headersTimeout: 10_000, bodyTimeout: 10_000 }) } catch (err) {
    throw new ImgdistError('NETWORK_ERROR', `cannot reach the agent at ${url}: ${(err as Error).message} (is imgdist-agent running? see --api)`)
  }
  const text = await res.body.text()
  if (res.statusCode >= 400) {
    const e = parseErrorEnvelope(res.statusCode, text)
    const code = e.code ?? 'HTTP_ERROR'
    // the code leads the line (imgdist-agent: CODE: ...); without one, the status says most
    const message = e.code !== undefined && e.message !== '' ? e.message : formatErrorEnvelope(e, { withCode: false })
    // an agent has every route this CLI calls (its 404s name an image): a server without them is
    // something else (the index server's URL given as --api, say), which "no route" left to guess
    if (res.statusCode === 404 && (code !== 'NOT_FOUND' || message.startsWith('no route'))) {
      throw new ImgdistError(code, `${url}: ${message}; is --api the address of an imgdist-agent's api.listen?`)
    }
    throw new ImgdistError(code, message)
  }
  try { return JSON.parse(text) } catch { return text }
}

/** Returns the exit code: 0 ok, 1 failure, 2 usage (thrown UsageError is mapped by the caller). */
export async function runCli (argv: string[], io: CliIo): Promise<number> {
  const p = parseCliArgs(argv, io.env)
  const print = (v: unknown, human: () => string): void => { io.out(p.json ? JSON.stringify(v, null, 2) + '\n' : human()) }
  switch (p.cmd) {
    case 'status': { const s = await call('GET', `${p.api}/v1/status`) as AgentStatus; print(s, () => formatStatus(s)); break }
    case 'images': { const r = await call('GET', `${p.api}/v1/images`) as { images: ImageView[] }; print(r, () => formatImages(r.images)); break }
    case 'peers': { const r = await call('GET', `${p.api}/v1/peers`) as { peers: PeerInfo[] }; print(r, () => formatPeers(r.peers)); break }
    case 'approve': case 'retry': {
      const r = await call('POST', `${p.api}/v1/images/${encodeURIComponent(p.arg as string)}/${p.cmd}`) as { images: ImageView[], messages?: string[] }
      print(r, () => (r.messages ?? []).map((m) => m + '\n').join('') + formatImages(r.images))
      break
    }
    case 'pause': case 'resume': {
      const r = await call('POST', `${p.api}/v1/${p.cmd}`) as Partial<PauseResult>
      print(r, () => pauseLine(p.cmd as 'pause' | 'resume', r))
      break
    }
  }
  return 0
}

/** An agent before session 25 does not say whether anything changed: it is then taken to have. */
function pauseLine (cmd: 'pause' | 'resume', r: Partial<PauseResult>): string {
  if (r.changed !== false) return cmd === 'pause' ? 'paused\n' : 'resumed\n'
  if (cmd === 'resume') return 'not paused; nothing to resume\n'
  return `already paused${r.pausedAt !== undefined ? ` since ${r.pausedAt}` : ''}; nothing changed ("imgdist-agent resume" downloads again)\n`
}
