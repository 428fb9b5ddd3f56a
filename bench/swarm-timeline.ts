import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseFlags } from './args.js'
import { SUBNET } from './netns.js'
import { swarmTimeline, type TraceLine } from './trace-timeline.js'

/**
 * node dist/bench/swarm-timeline.js [--dir /tmp/imgdist-bench/swarm/imgdist-warm] [--origin-ip 10.213.77.1]:
 * after a bench:swarm run with IMGDIST_BENCH_LOG_LEVEL=trace, when the origin's pieces left,
 * how long the tail after its last unique piece took, and how much was still missing then
 * (bench/HISTORY.md, session 16). The agents' logs are <dir>/h*\/agent.log.
 */

/** bench:swarm's origin is host 0 of its testbed */
const ORIGIN_IP = `${SUBNET}.1`
const USAGE = `usage: node dist/bench/swarm-timeline.js [--dir /tmp/imgdist-bench/swarm/imgdist-warm] [--origin-ip ${ORIGIN_IP}]   (agents logged at trace: IMGDIST_BENCH_LOG_LEVEL=trace)`

function main (): number {
  const f = parseFlags(process.argv.slice(2), { dir: '/tmp/imgdist-bench/swarm/imgdist-warm', 'origin-ip': ORIGIN_IP }, USAGE)
  if (f.help) { console.log(USAGE); return 0 }
  let hosts: string[]
  try { hosts = readdirSync(f.dir).filter((d) => /^h\d+$/.test(d)).sort() } catch (err) { console.error(`${f.dir}: ${(err as Error).message}\n${USAGE}`); return 2 }
  if (hosts.length === 0) { console.error(`${f.dir}: no h<N> agent directories\n${USAGE}`); return 2 }
  const lines: TraceLine[] = []
  for (const h of hosts) {
    let text: string
    try { text = readFileSync(join(f.dir, h, 'agent.log'), 'utf8') } catch { continue }
    for (const raw of text.split('\n')) {
      if (!raw.includes('"piece verified"') && !raw.includes('"requested"')) continue
      try {
        const j = JSON.parse(raw) as { time: number, msg: string, piece?: number, from?: string[] }
        lines.push({ agent: h, time: j.time, msg: j.msg, piece: j.piece, from: j.from })
      } catch { /* a line cut short by the agent's kill */ }
    }
  }
  const t = swarmTimeline(lines, f['origin-ip'])
  const s = (x: number): string => x.toFixed(2)
  console.log(`${t.agents} agents, ${t.pieces} pieces; seconds from the first request:`)
  console.log(`  origin: first piece ${s(t.firstOriginPiece)}, last unique piece ${s(t.lastUniqueOriginPiece)}; ${t.originDeliveries} verifications with the origin among the senders (${t.pieces} unique)`)
  console.log(`  origin pieces per second: ${t.originPiecesPerSecond.join(' ')}`)
  console.log(`  agents' last pieces: ${Object.entries(t.lastPiece).map(([h, x]) => `${h} ${s(x)}`).join(', ')}`)
  console.log(`  tail after the last unique origin piece: ${s(t.tail)} s; (agent, piece) pairs missing then ${t.missingAtUniqueEnd}, one second before ${t.missingSecondBefore}`)
  return 0
}

try { process.exitCode = main() } catch (err) { console.error((err as Error).message); process.exitCode = 1 }
