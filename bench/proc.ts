import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createWriteStream, readdirSync, readFileSync } from 'node:fs'
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ImgdistError } from '../lib/errors.js'

/** Child processes and /proc readings for the benchmark mains (Linux only). */

const CLK_TCK = 100 // sysconf(_SC_CLK_TCK) on every Linux this runs on; getconf is not worth a spawn

/** user+system CPU seconds of a live process (threads included), or undefined once it is gone. */
export function cpuSeconds (pid: number): number | undefined {
  const t = cpuTimes(pid)
  return t !== undefined ? t.user + t.system : undefined
}

/** user and system CPU seconds of a live process (threads included), or undefined once it is gone. */
export function cpuTimes (pid: number): { user: number, system: number } | undefined {
  try { return statTimes(readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return undefined }
}

/** utime and stime of a /proc/…/stat line, in seconds */
function statTimes (stat: string): { user: number, system: number } {
  // comm may contain spaces and parens: fields start after the last ')'
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(f[11]) / CLK_TCK, system: Number(f[12]) / CLK_TCK }
}

/** user+system CPU seconds from the last line of `/usr/bin/time -f '%U %S'` output, or undefined if it has none. */
export function timeCpu (text: string): number | undefined {
  const [u, s] = text.trim().split('\n').pop()?.split(' ').map(Number) ?? []
  return u !== undefined && s !== undefined && Number.isFinite(u) && Number.isFinite(s) ? u + s : undefined
}

/** timeCpu() of the file `/usr/bin/time -o FILE` wrote, or undefined if there is none. */
export function timeFileCpu (path: string): number | undefined {
  try { return timeCpu(readFileSync(path, 'utf8')) } catch { return undefined }
}

/** CPU seconds per thread of a live process, keyed 'main' or by name and tid, from /proc/PID/task (threads that exited are not listed). */
export function threadCpu (pid: number): Map<string, { user: number, system: number }> {
  const out = new Map<string, { user: number, system: number }>()
  let tids: string[]
  try { tids = readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const name = tid === String(pid) ? 'main' : `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}/${tid}`
      out.set(name, statTimes(stat))
    } catch { /* the thread exited */ }
  }
  return out
}

/** VmRSS in KiB, or undefined once the process is gone. */
export function rssKiB (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] !== undefined ? Number(m[1]) : undefined
  } catch { return undefined }
}

export function run (cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input })
  } catch (err) {
    const e = err as { stderr?: string, message: string }
    throw new ImgdistError('BENCH_COMMAND', `${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err })
  }
}

export function tryRun (cmd: string, args: string[]): string | undefined {
  try { return run(cmd, args) } catch { return undefined }
}

/** Every process started here and not yet exited, so a main can kill them all on a signal. */
export const live = new Set<Proc>()

export function killLive (): void {
  for (const p of live) p.child.kill('SIGKILL')
}

/**
 * Runs `cleanup` (kill children, tear down namespaces) however the benchmark ends: normal exit
 * or Ctrl-C / SIGTERM / SIGHUP, so no namespace or process outlives a run.
 */
export function cleanupOnExit (cleanup: () => void): void {
  process.on('exit', cleanup)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { cleanup(); process.exit(130) })
}

/** The lines of a file a child appends to (a completion hook's log); none while it does not exist. */
export function readLines (path: string): string[] {
  try { return readFileSync(path, 'utf8').split('\n') } catch { return [] }
}

export interface Proc { child: ChildProcess, pid: number, label: string, exited: Promise<number | null>, exitedAt?: number }

/** Spawns with stdout+stderr to `logPath`; `exited` resolves with the exit code (null if signalled). */
export function start (label: string, cmd: string, args: string[], logPath: string, opts: SpawnOptions = {}): Proc {
  const log = createWriteStream(logPath, { flags: 'a' })
  log.on('error', (err) => { console.error(`bench: log ${logPath}: ${err.message}`) })
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.pipe(log, { end: false })
  child.stderr?.pipe(log, { end: false })
  if (child.pid === undefined) throw new ImgdistError('BENCH_SPAWN', `could not start ${cmd}`)
  const p: Proc = { child, pid: child.pid, label, exited: Promise.resolve(null) }
  p.exited = new Promise((resolve) => {
    child.once('error', () => { live.delete(p); resolve(null) })
    child.once('close', (code) => { p.exitedAt = performance.now(); live.delete(p); log.end(); resolve(code) })
  })
  live.add(p)
  return p
}

export async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function waitUntil (check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = performance.now() + timeoutMs
  while (performance.now() < end) {
    if (await check()) return true
    await sleep(everyMs)
  }
  return await check()
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when every process has exited. */
export async function stopAll (procs: Proc[], graceMs = 8000): Promise<void> {
  for (const p of procs) if (p.exitedAt === undefined) p.child.kill('SIGTERM')
  const all = Promise.all(procs.map(async (p) => await p.exited))
  const timer = setTimeout(() => { for (const p of procs) if (p.exitedAt === undefined) p.child.kill('SIGKILL') }, graceMs)
  await all
  clearTimeout(timer)
}

/** Frees the disk a run used but keeps its logs and configs (everything up to 1 MiB). */
export async function removeBigFiles (dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name)
    if (e.isFile() && (await stat(p)).size > 1024 * 1024) await rm(p, { force: true })
  }
}

/**
 * Spawns `script` (a benchmark file) in one of its roles as a child Node process; `line`
 * resolves with the first JSON line it prints on stdout. `end()` closes its stdin, which the
 * roles take as the signal to stop.
 */
export function spawnRole (script: string, args: string[], nodeArgs: string[], timeoutMs: number): { pid: number, line: Promise<Record<string, unknown>>, end: () => void, exited: Promise<void> } {
  const p = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => p.once('exit', () => { resolve() }))
  const line = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${args[1] ?? '?'}: timed out`)) }, timeoutMs)
    p.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      const nl = buf.indexOf('\n')
      if (nl >= 0) { clearTimeout(timer); resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>) }
    })
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${args[1] ?? '?'} exited ${String(code)}`)) })
  })
  return { pid: p.pid ?? 0, line, end: () => { p.stdin?.end() }, exited }
}
