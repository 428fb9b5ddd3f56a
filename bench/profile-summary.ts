import { readFileSync } from 'node:fs'

/**
 * node dist/bench/profile-summary.js FILE.cpuprofile [--top 25]: self time per function+url of a
 * `node --cpu-prof` profile, biggest first, as a share of all samples (idle and GC included so
 * the shares add up to 100 %).
 */

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

function main (): number {
  const file = process.argv[2]
  if (file === undefined) { console.error('usage: profile-summary.js FILE.cpuprofile [--top 25]'); return 2 }
  const topIdx = process.argv.indexOf('--top')
  const top = topIdx > 0 ? Number(process.argv[topIdx + 1]) : 25
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  let total = 0
  // Sample i lasted timeDeltas[i + 1] (the delta recorded before the next sample).
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i] as number)
    const dt = p.timeDeltas[i + 1] ?? 0
    if (n === undefined) continue
    const url = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
    const key = `${n.callFrame.functionName || '(anonymous)'} ${url}${url !== '' ? ':' + String(n.callFrame.lineNumber + 1) : ''}`
    self.set(key, (self.get(key) ?? 0) + dt)
    total += dt
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`)
  for (const [k, us] of rows) console.log(`${(100 * us / total).toFixed(1).padStart(5)} %  ${(us / 1e6).toFixed(3).padStart(7)} s  ${k}`)
  return 0
}

process.exit(main())
