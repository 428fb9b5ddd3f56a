import { canonicalHost, splitHostPort } from '../lib/host-port.js'

/**
 * Where a swarm run's time went, rebuilt from the agents' `piece verified` trace lines (a run
 * with IMGDIST_BENCH_LOG_LEVEL=trace; see swarm-timeline.ts). Pure: it takes the parsed
 * lines, so that a test can hand it a made-up run.
 *
 * Times are seconds from the first `requested` line of any agent (the first request anywhere,
 * which is about when the origin's uplink starts to work). A piece "leaves the origin" when the
 * first agent verifies it with the origin among its senders; the unique phase ends with the
 * last such piece, and the tail is what follows until the last agent has its last piece.
 */

export interface TraceLine {
  /** agent name (the host's directory, e.g. h3) */
  agent: string
  /** pino's epoch milliseconds */
  time: number
  msg: string
  piece?: number
  from?: string[]
}

export interface Timeline {
  pieces: number
  agents: number
  /** when the origin's first and last unique pieces were first verified */
  firstOriginPiece: number
  lastUniqueOriginPiece: number
  /** per agent, when its last piece was verified */
  lastPiece: Record<string, number>
  tail: number
  /** (agent, piece) pairs not yet verified when the unique phase ended, and one second before */
  missingAtUniqueEnd: number
  missingSecondBefore: number
  /** verifications with the origin among the senders, all pieces together (more than `pieces`: the origin sent some again) */
  originDeliveries: number
  /** origin pieces first verified in each whole second, from 0 */
  originPiecesPerSecond: number[]
}

/** `originIp`: the origin seed's address as the agents log their senders (10.213.77.1 in bench:swarm). */
export function swarmTimeline (lines: TraceLine[], originIp: string): Timeline {
  const verified = lines.filter((l) => l.msg === 'piece verified' && l.piece !== undefined).sort((a, b) => a.time - b.time)
  if (verified.length === 0) throw new Error('no "piece verified" lines: was the run logged at trace level?')
  // a loop, not Math.min(...): a 1 GiB run logs tens of thousands of requests
  let t0 = (verified[0] as TraceLine).time
  for (const l of lines) if (l.msg === 'requested' && l.time < t0) t0 = l.time
  const sec = (ms: number): number => (ms - t0) / 1000
  // logs before session 20 spell an IPv4 peer on a dual-stack socket ::ffff:a.b.c.d:port
  const fromOrigin = (l: TraceLine): boolean => (l.from ?? []).some((s) => canonicalHost(splitHostPort(s).host) === originIp)

  const agents = [...new Set(verified.map((l) => l.agent))].sort()
  const pieces = new Set(verified.map((l) => l.piece as number)).size
  const firstFromOrigin = new Map<number, number>()
  const lastPiece: Record<string, number> = {}
  let originDeliveries = 0
  for (const l of verified) {
    lastPiece[l.agent] = sec(l.time)
    if (!fromOrigin(l)) continue
    originDeliveries++
    if (!firstFromOrigin.has(l.piece as number)) firstFromOrigin.set(l.piece as number, sec(l.time))
  }
  const unique = [...firstFromOrigin.values()].sort((a, b) => a - b)
  if (unique.length === 0) throw new Error(`no piece came from the origin ${originIp}: is --origin-ip right?`)
  const lastUnique = unique[unique.length - 1] as number
  const missingAt = (s: number): number => agents.length * pieces - verified.filter((l) => sec(l.time) <= s).length
  const perSecond: number[] = []
  for (const s of unique) perSecond[Math.floor(s)] = (perSecond[Math.floor(s)] ?? 0) + 1
  return {
    pieces,
    agents: agents.length,
    firstOriginPiece: unique[0] as number,
    lastUniqueOriginPiece: lastUnique,
    lastPiece,
    tail: Math.max(...Object.values(lastPiece)) - lastUnique,
    missingAtUniqueEnd: missingAt(lastUnique),
    missingSecondBefore: missingAt(lastUnique - 1),
    originDeliveries,
    originPiecesPerSecond: Array.from(perSecond, (n) => n ?? 0)
  }
}
