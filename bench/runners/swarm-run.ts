import { spawn } from 'node:child_process'
import type { BenchImage } from '../fixture.js'
import { sha512OfFile } from '../fixture.js'
import type { Testbed } from '../netns.js'
import { cpuSeconds, cpuTimes, sleep, threadCpu, type Proc } from '../proc.js'

/** What every swarm runner gets, and the one measuring loop they share. */

export interface SwarmContext {
  bed: Testbed
  image: BenchImage
  /** scratch directory of this tool's run */
  work: string
  /** host indices of the downloaders (1..N-1); host 0 is the origin */
  downloaders: number[]
  timeoutMs: number
  /** TCP port on the origin for HTTP (index server, tracker, or plain HTTP server) */
  originPort: number
  /** absolute path of dist/ */
  distDir: string
  log: (msg: string) => void
}

export interface DownloaderResult {
  host: number
  /** seconds from the start of the downloaders until this one was complete; undefined = not done */
  seconds?: number
  /** CPU seconds (user+system) the downloader process had used when it was complete */
  cpuSeconds?: number
  /** the system (kernel) part of cpuSeconds, when /proc had it */
  systemSeconds?: number
  /** the file it ended with has the catalogue's sha512 */
  ok?: boolean
}

export interface SwarmRun {
  tool: string
  /** why this tool did not run */
  skipped?: string
  notes: string[]
  downloaders: DownloaderResult[]
  /** CPU seconds of the origin's processes between the downloaders' start and the last completion */
  originCpuSeconds?: number
  /** bytes (frames) sent by the origin's interface between the downloaders' start and the last completion */
  originEgressBytes?: number
}

export interface Measure {
  tool: string
  ctx: SwarmContext
  /** processes on the origin whose CPU counts as the origin's */
  origin: Proc[]
  /** starts the downloaders; called at T0 */
  startDownloaders: () => Map<number, Proc>
  /** whether host's download is complete (cheap: called every 100 ms per host) */
  isDone: (host: number, proc: Proc | undefined) => boolean
  /** where host's finished file is, for the sha512 check */
  fileOf: (host: number) => string
  /** CPU of a downloader that has already exited (e.g. from /usr/bin/time) */
  exitedCpu?: (host: number) => number | undefined
  /** downloaders that were running before T0: count only the CPU they use from T0 on */
  cpuSinceStart?: boolean
}

/** Runs the downloaders to completion or timeout, measuring as it goes; the caller stops processes. */
export async function measure (m: Measure): Promise<{ run: SwarmRun, procs: Map<number, Proc> }> {
  const { ctx } = m
  const egress0 = ctx.bed.txBytes(0)
  // every host's frames, origin included: the packet count is what the kernel's network path
  // (veth, bridge, tbf, TCP) charges system time for, on both ends
  const frames0 = allFrames(ctx)
  const originCpu0 = sum(m.origin.map((p) => cpuSeconds(p.pid) ?? 0))
  const t0 = performance.now()
  const procs = m.startDownloaders()
  const cpu0 = new Map<number, { user: number, system: number }>()
  if (m.cpuSinceStart === true) for (const [h, p] of procs) { const c = cpuTimes(p.pid); if (c !== undefined) cpu0.set(h, c) }
  // IMGDIST_BENCH_AT_T0='perf record -a -o /tmp/p.data -- sleep 12': a command started at T0, the downloaders' PIDs in $PIDS
  const atT0 = process.env.IMGDIST_BENCH_AT_T0
  if (atT0 !== undefined && atT0 !== '') {
    spawn('sh', ['-c', atT0], { stdio: 'ignore', detached: true, env: { ...process.env, PIDS: [...procs.values()].map((p) => p.pid).join(' ') } }).unref()
  }
  // IMGDIST_BENCH_THREADS=1: where each downloader's CPU went, thread by thread (development aid)
  const byThread = process.env.IMGDIST_BENCH_THREADS === '1' ? new ThreadTally(procs, m.cpuSinceStart === true) : undefined
  const results = new Map<number, DownloaderResult>(ctx.downloaders.map((h) => [h, { host: h }]))
  const deadline = t0 + ctx.timeoutMs
  let pending = [...ctx.downloaders]
  let lastSample: { egress: number, originCpu: number } | undefined
  while (pending.length > 0 && performance.now() < deadline) {
    await sleep(100)
    const now = performance.now()
    for (const h of pending) {
      const p = procs.get(h)
      if (!m.isDone(h, p)) continue
      const r = results.get(h) as DownloaderResult
      // a process that exited by itself (curl) is done at its exit, not at our poll
      r.seconds = ((p?.exitedAt ?? now) - t0) / 1000
      const t = p !== undefined ? cpuTimes(p.pid) : undefined
      const b = cpu0.get(h) ?? { user: 0, system: 0 }
      r.cpuSeconds = t !== undefined ? t.user + t.system - b.user - b.system : (p !== undefined ? m.exitedCpu?.(h) : undefined)
      r.systemSeconds = t !== undefined ? t.system - b.system : undefined
      if (p !== undefined && r.cpuSeconds !== undefined) byThread?.done(p.pid, r.cpuSeconds)
    }
    pending = pending.filter((h) => results.get(h)?.seconds === undefined)
    if (pending.length === 0) lastSample = { egress: ctx.bed.txBytes(0), originCpu: sum(m.origin.map((p) => cpuSeconds(p.pid) ?? 0)) }
    if (pending.length > 0 && [...procs.values()].every((p) => p.exitedAt !== undefined)) break // all died
  }
  const end = lastSample ?? { egress: ctx.bed.txBytes(0), originCpu: sum(m.origin.map((p) => cpuSeconds(p.pid) ?? 0)) }
  const run: SwarmRun = {
    tool: m.tool,
    notes: [],
    downloaders: [...results.values()],
    originCpuSeconds: end.originCpu - originCpu0,
    originEgressBytes: end.egress - egress0
  }
  if (byThread !== undefined) run.notes.push(byThread.summary())
  const frames = allFrames(ctx)
  const mib = (frames.bytes - frames0.bytes) / 2 ** 20
  const packets = frames.packets - frames0.packets
  run.notes.push(`frames sent by all hosts until the end: ${packets} (${(packets / mib).toFixed(0)} per MiB sent, ${((frames.bytes - frames0.bytes) / packets).toFixed(0)} bytes each on average)`)
  if (pending.length > 0) run.notes.push(`${pending.length} of ${ctx.downloaders.length} not complete after ${(ctx.timeoutMs / 1000).toFixed(0)} s (or their processes exited)`)
  return { run, procs }
}

function allFrames (ctx: SwarmContext): { bytes: number, packets: number } {
  let bytes = 0
  let packets = 0
  for (const h of [0, ...ctx.downloaders]) { const t = ctx.bed.tx(h); bytes += t.bytes; packets += t.packets }
  return { bytes, packets }
}

/** sha512 of every completed downloader's file against the catalogue (after processes stopped). */
export async function verifyFiles (run: SwarmRun, image: BenchImage, fileOf: (host: number) => string): Promise<void> {
  for (const r of run.downloaders) {
    if (r.seconds === undefined) continue
    try { r.ok = await sha512OfFile(fileOf(r.host)) === image.sha512 } catch { r.ok = false }
  }
  const bad = run.downloaders.filter((r) => r.seconds !== undefined && r.ok !== true).length
  if (bad > 0) run.notes.push(`${bad} completed download(s) FAILED the sha512 check`)
}

export function skipped (tool: string, ctx: SwarmContext, why: string): SwarmRun {
  return { tool, skipped: why, notes: [why], downloaders: ctx.downloaders.map((h) => ({ host: h })) }
}

const sum = (xs: number[]): number => xs.reduce((a, x) => a + x, 0)

/**
 * CPU per thread summed over the downloaders, from T0 (or their start) to each one's completion.
 * Each thread's system share is shown: Node 20 names every thread "node", and the split is what
 * tells V8's workers (compiler, GC: user time) from libuv's pool (page-cache writes: system time).
 */
class ThreadTally {
  readonly #base = new Map<number, Map<string, { user: number, system: number }>>()
  readonly #sum = new Map<string, { cpu: number, system: number }>()
  #n = 0

  constructor (procs: Map<number, Proc>, sinceNow: boolean) {
    for (const p of procs.values()) this.#base.set(p.pid, sinceNow ? threadCpu(p.pid) : new Map())
  }

  done (pid: number, total: number): void {
    const base = this.#base.get(pid) ?? new Map<string, { user: number, system: number }>()
    let listed = 0
    let i = 0
    for (const [name, t] of threadCpu(pid)) {
      const b = base.get(name) ?? { user: 0, system: 0 }
      const d = t.user + t.system - b.user - b.system
      listed += d
      const key = name === 'main' ? name : `${name.slice(0, name.indexOf('/'))}#${i++}`
      this.#add(key, d, t.system - b.system)
    }
    this.#add('(exited threads)', total - listed, 0)
    this.#n++
  }

  summary (): string {
    const mean = (v: number): string => (v / Math.max(1, this.#n)).toFixed(3)
    // helper threads are numbered in their creation order, so the nth of each agent adds up with the others' nth
    const parts = [...this.#sum].sort((a, b) => b[1].cpu - a[1].cpu)
      .map(([k, v]) => k === '(exited threads)' || v.cpu === 0 ? `${k} ${mean(v.cpu)}` : `${k} ${mean(v.cpu)} (sys ${mean(v.system)})`)
    return `CPU-s per downloader by thread (mean of ${this.#n}): ${parts.join('; ')}`
  }

  #add (key: string, cpu: number, system: number): void {
    const s = this.#sum.get(key) ?? { cpu: 0, system: 0 }
    this.#sum.set(key, { cpu: s.cpu + cpu, system: s.system + system })
  }
}
