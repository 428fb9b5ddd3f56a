/**
 * Kumar–Ross lower bound on the time for N' downloaders to each receive a file of F bytes from
 * one seed (R. Kumar, K. W. Ross, "Peer-assisted file distribution: the minimum distribution
 * time", 2006): the seed must push every byte out once (F/u_s), the slowest downloader must pull
 * every byte in (F/d_min), and the swarm as a whole must move N'·F bytes with all uplinks together
 * (N'·F / (u_s + Σu_i)). No schedule beats the largest of the three.
 */

export interface BoundInput {
  /** F: file size in bytes */
  fileBytes: number
  /** u_s: the seed's uplink in bits per second */
  seedUpBps: number
  /** u_i: each downloader's uplink in bits per second (its length is N') */
  peerUpBps: number[]
  /** d_i: each downloader's downlink in bits per second; omitted or Infinity = uncapped */
  peerDownBps?: number[]
}

export interface Bound {
  /** T_min in seconds */
  seconds: number
  seedTerm: number
  downlinkTerm: number
  swarmTerm: number
  /** what plain HTTP from the seed alone cannot beat: N'·F/u_s */
  centralSeconds: number
}

export function kumarRossBound (b: BoundInput): Bound {
  const n = b.peerUpBps.length
  if (!(b.fileBytes >= 0) || !(b.seedUpBps > 0) || n < 1) throw new RangeError('need F ≥ 0, u_s > 0 and at least one downloader')
  if (b.peerUpBps.some((u) => !(u >= 0))) throw new RangeError('uplinks must be ≥ 0')
  const bits = b.fileBytes * 8
  const down = b.peerDownBps ?? []
  if (down.some((d) => !(d > 0))) throw new RangeError('downlinks must be > 0 (Infinity for uncapped)')
  const dMin = down.length > 0 ? Math.min(...down) : Infinity
  const seedTerm = bits / b.seedUpBps
  const downlinkTerm = Number.isFinite(dMin) ? bits / dMin : 0
  const swarmTerm = n * bits / (b.seedUpBps + b.peerUpBps.reduce((a, u) => a + u, 0))
  return {
    seconds: Math.max(seedTerm, downlinkTerm, swarmTerm),
    seedTerm,
    downlinkTerm,
    swarmTerm,
    centralSeconds: n * bits / b.seedUpBps
  }
}
