import { spawn } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { ImgdistError } from '../lib/errors.js'
import { cpuSeconds, live, run, tryRun, type Proc } from './proc.js'

/**
 * The user-space delay hub (bench/delay-hub.c) as a child of the benchmark: compiled from source
 * into the run's work directory (the C file is the source of truth; no binary is committed), then
 * started on the TAP ports that Testbed made. See delay-hub.c for why it exists.
 */

/** next to this file when run from source (the tests), two levels up from dist/bench when built */
const SOURCE = [new URL('./delay-hub.c', import.meta.url), new URL('../../bench/delay-hub.c', import.meta.url)]
  .map((u) => fileURLToPath(u)).find((p) => existsSync(p)) ?? 'bench/delay-hub.c'

export interface HubPort { netnsPath: string, ifname: string }

export interface DelayHub {
  pid: number
  /** user+system CPU seconds it has used so far (it forwards every frame of the run) */
  cpuSeconds: () => number | undefined
  /** SIGTERM; resolves with its closing line of counters (frames in and out, dropped) */
  stop: () => Promise<string>
}

/** Compiles delay-hub.c into `dir`; returns the binary's path. */
export function buildDelayHub (dir: string): string {
  const cc = ['cc', 'gcc'].find((c) => tryRun('which', [c]) !== undefined)
  if (cc === undefined) throw new ImgdistError('BENCH_COMMAND', '--delay-ms needs a C compiler for bench/delay-hub.c, the kernel having no netem (apt-get install gcc)')
  const out = join(dir, 'delay-hub')
  run(cc, ['-O2', '-Wall', '-o', out, SOURCE])
  return out
}

/**
 * Starts the hub in namespace `hubNs` and resolves once every port is attached. Its stdin stays
 * open for as long as this process lives: the hub exits when it closes, so it cannot outlive a
 * benchmark that was killed outright. It is also in `live`, for killLive().
 */
export async function startDelayHub (bin: string, hubNs: string, delayMs: number, ports: HubPort[], logPath: string, timeoutMs = 10_000): Promise<DelayHub> {
  const args = ['netns', 'exec', hubNs, bin, String(Math.round(delayMs * 1000)), ...ports.flatMap((p) => [p.netnsPath, p.ifname])]
  const child = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  if (child.pid === undefined) throw new ImgdistError('BENCH_SPAWN', `could not start ${bin}`)
  const log = createWriteStream(logPath, { flags: 'a' })
  child.stderr.pipe(log)
  const proc: Proc = { child, pid: child.pid, label: 'delay-hub', exited: Promise.resolve(null) }
  proc.exited = new Promise((resolve) => { child.once('close', (code) => { proc.exitedAt = performance.now(); live.delete(proc); resolve(code) }) })
  live.add(proc)
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const fail = (why: string): void => { clearTimeout(timer); child.kill('SIGKILL'); reject(new ImgdistError('BENCH_COMMAND', `delay-hub ${why} (its log: ${logPath})`)) }
    const timer = setTimeout(() => { fail(`not ready after ${timeoutMs} ms`) }, timeoutMs)
    const early = (code: number | null): void => { fail(`exited with ${String(code)} before it was ready`) }
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('ready\n')) { clearTimeout(timer); child.off('close', early); resolve() }
    })
    child.once('close', early)
  })
  // `ip netns exec` execs the hub, so the child's PID is the hub's own
  const pid = child.pid
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  return {
    pid,
    cpuSeconds: () => cpuSeconds(pid),
    stop: async () => {
      if (proc.exitedAt === undefined) child.kill('SIGTERM')
      await proc.exited
      return err.trim().split('\n').pop() ?? ''
    }
  }
}
