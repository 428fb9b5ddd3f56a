import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

/**
 * For the interop tests against other BitTorrent programs (aria2c, libtorrent, Transmission):
 * ports to give them, and their processes, logged and killed when the test ends.
 */

/** A TCP port free on 127.0.0.1 right now (the foreign clients need a fixed one on their command line). */
export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => { resolve() }))
  return port
}

export interface Foreign { proc: ChildProcess, logs: string[], exited: Promise<number | null>, tail: (n?: number) => string }

/**
 * `spawn` whose processes get SIGKILL at teardown, pass or fail: a client left running would keep
 * seeding into the next test's swarm and keep tap from exiting.
 */
export function foreignProcs (t: { teardown: (fn: () => Promise<void>) => void }): { spawn: (cmd: string, args: string[]) => Foreign } {
  const all: Foreign[] = []
  t.teardown(async () => {
    await Promise.all(all.map(async (f) => {
      if (f.proc.exitCode !== null || f.proc.signalCode !== null) return
      f.proc.kill('SIGKILL')
      await f.exited
    }))
  })
  return {
    spawn: (cmd, args) => {
      const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      const logs: string[] = []
      proc.stdout?.on('data', (d: Buffer) => logs.push(d.toString()))
      proc.stderr?.on('data', (d: Buffer) => logs.push(d.toString()))
      // 'close', not 'exit': the output is complete when a test reads it after the wait
      const exited = new Promise<number | null>((resolve) => {
        proc.once('close', (code) => { resolve(code) })
        proc.once('error', (err) => { logs.push(`spawn ${cmd}: ${err.message}\n`); resolve(null) })
      })
      const f = { proc, logs, exited, tail: (n = 2000) => logs.join('').slice(-n) }
      all.push(f)
      return f
    }
  }
}
