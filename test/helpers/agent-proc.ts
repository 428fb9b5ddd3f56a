import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { stringify } from 'yaml'

/** Runs the built `imgdist-agent` as a real process and talks to its API. */

export const AGENT_BIN = resolve('dist/bin/imgdist-agent.js')

/** `imgdist-agent run --config FILE` to its end (a start that fails): exit code and stderr. */
export async function agentRun (configPath: string): Promise<{ code: number, stderr: string }> {
  try {
    await promisify(execFile)(process.execPath, [AGENT_BIN, 'run', '--config', configPath], { timeout: 30_000 })
    return { code: 0, stderr: '' }
  } catch (err) {
    const e = err as { code: number, stderr: string }
    return { code: e.code, stderr: e.stderr }
  }
}

export interface AgentProc {
  site: string
  dir: string
  configPath: string
  api: string
  proc: ChildProcess
  logs: string[]
  exited: Promise<number | null>
  get: <T = unknown>(path: string) => Promise<T>
  post: <T = unknown>(path: string) => Promise<T>
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
  /** `imgdist-agent ARGS --api <this agent>`: its stdout; rejects (with stderr) on a non-zero exit */
  cli: (...args: string[]) => Promise<string>
}

const execFileP = promisify(execFile)

export async function writeAgentConfig (dir: string, site: string, extra: Record<string, unknown>): Promise<string> {
  await mkdir(dir, { recursive: true })
  const cfg = {
    site,
    dataDir: join(dir, 'data'),
    api: { listen: '127.0.0.1:0' },
    swarm: { torrentPort: 0, dht: { enabled: false }, lsd: false },
    targets: [{ name: 'dir', type: 'directory', path: join(dir, 'images') }],
    retry: { initial: '1s', max: '5s' },
    logLevel: 'info',
    ...extra
  }
  const configPath = join(dir, 'agent.yaml')
  await writeFile(configPath, stringify(cfg))
  return configPath
}

/** `wrap`: a command the agent runs under (e.g. strace and its options); `proc` is then that command's process. */
export async function startAgent (dir: string, site: string, extra: Record<string, unknown>, configPath?: string, wrap: string[] = []): Promise<AgentProc> {
  const cfgPath = configPath ?? await writeAgentConfig(dir, site, extra)
  const [cmd, ...args] = [...wrap, process.execPath, AGENT_BIN, 'run', '--config', cfgPath]
  const proc = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { resolve(code) }))
  const api = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => { reject(new Error(`agent ${site} did not start: ${logs.join('\n')}`)) }, 20_000)
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        logs.push(line)
        try {
          const j = JSON.parse(line) as { msg?: string, api?: string }
          if (j.msg === 'imgdist-agent started' && j.api !== undefined) { clearTimeout(timer); resolve(j.api) }
        } catch {}
      }
    })
    proc.stderr?.on('data', (d: Buffer) => { logs.push(d.toString()) })
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`agent ${site} exited with ${String(code)}: ${logs.join('\n')}`)) })
  })
  const call = async <T>(method: string, path: string): Promise<T> => {
    const res = await fetch(`${api}${path}`, { method })
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`)
    return await res.json() as T
  }
  return {
    site, dir, configPath: cfgPath, api, proc, logs, exited,
    cli: async (...args) => (await execFileP(process.execPath, [AGENT_BIN, ...args, '--api', api], { timeout: 20_000 })).stdout,
    get: async (p) => await call('GET', p),
    post: async (p) => await call('POST', p),
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      proc.kill(signal)
      return await exited
    }
  }
}

export interface ImageViewLite { id: string, state: string, progress: number, bytesFromPeers: number, bytesFromWebSeeds: number, bytesThisRun: number, resumedBytes: number, hashFailures: number, bannedPeers: string[], error?: { code: string, message: string }, reason?: string, seeding: boolean, bytesUploaded?: number }

export async function imagesOf (a: AgentProc): Promise<ImageViewLite[]> {
  return (await a.get<{ images: ImageViewLite[] }>('/v1/images')).images
}

/** Polls `check` until it returns a value, or fails after `ms` with the last state in the message. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v
    } catch (err) { last = err }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${last !== undefined ? `: ${String(last)}` : ''}`)
}

/**
 * The agents a test starts, killed (SIGKILL) when the test ends, pass or fail: `startAgent` here
 * is the module's, plus the registration. `agents` lists them in start order.
 */
export function agentFleet (t: { teardown: (fn: () => Promise<void>) => void }): { agents: AgentProc[], startAgent: typeof startAgent } {
  const agents: AgentProc[] = []
  t.teardown(async () => { await Promise.all(agents.map(async (a) => await a.stop('SIGKILL'))) })
  return {
    agents,
    startAgent: async (...args) => {
      const a = await startAgent(...args)
      agents.push(a)
      return a
    }
  }
}
