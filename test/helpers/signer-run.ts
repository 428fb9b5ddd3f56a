import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** Runs the built imgdist-sign (dist/bin/imgdist-sign.js, the bundle npm installs as the bin) as a user would; never blocks the event loop. */

export const SIGNER_BIN = fileURLToPath(new URL('../../dist/bin/imgdist-sign.js', import.meta.url))

export interface RunResult { code: number | null, stdout: string, stderr: string }

export async function runSigner (args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SIGNER_BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, IMGDIST_DEBUG: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, opts.timeoutMs ?? 120_000)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** A failure must be exactly one line on stderr, never a stack trace. */
export function isOneErrorLine (stderr: string): boolean {
  const lines = stderr.split('\n').filter((l) => l !== '')
  return lines.length === 1 && /^imgdist-sign: [A-Z_]+: /.test(lines[0] as string) && !/\n\s+at /.test(stderr)
}
