import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { timeCpu } from '../proc.js'
import { skipped, type SwarmContext, type SwarmRun } from './swarm-run.js'
import { BT_PORT, doneFileOf, runTrackerSwarm } from './tracker-swarm.js'

/** aria2c with the same .torrent: one seeder on the origin, one downloader per host, our tracker on the origin. */

const A2 = [
  '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
  '--disable-ipv6=true', '--file-allocation=none', '--console-log-level=warn', '--summary-interval=0',
  '--allow-overwrite=true', '--auto-save-interval=0', `--listen-port=${BT_PORT}`, '--seed-ratio=0.0'
]

export async function runAria2 (ctx: SwarmContext): Promise<SwarmRun> {
  if (!existsSync('/usr/bin/aria2c')) return skipped('aria2c', ctx, 'aria2c: not installed (apt-get install aria2)')
  const { image, work } = ctx
  const hook = join(work, 'hook.sh')
  // aria2 calls the hook with GID, file count, path: the path names the host's directory
  await writeFile(hook, `#!/bin/sh\necho "$3" >> '${doneFileOf(ctx)}'\n`)
  await chmod(hook, 0o755)
  const run = await runTrackerSwarm(ctx, {
    tool: 'aria2c',
    label: 'aria2',
    seederCmd: (seedDir) => ['aria2c', ...A2, `--dir=${seedDir}`, '--bt-seed-unverified=true', image.torrentPath],
    downloaderCmd: (_h, dir) => ['aria2c', ...A2, `--dir=${dir}`, `--on-bt-download-complete=${hook}`, image.torrentPath],
    isDone: (lines, dir) => lines.some((line) => line.startsWith(dir + '/'))
  })
  // a downloader whose file passed the sha512 check: the hash then reads the whole image
  const host = run.downloaders.find((d) => d.ok === true)?.host
  const proof = host === undefined ? undefined : sha512Cpu(join(work, `h${host}`, image.id), image.size)
  if (proof !== undefined) run.notes.push(`sha512 of h${host ?? '?'}'s file after the run (\`openssl dgst -sha512\`, the library the agents use; the whole-image proof an agent computes and aria2c does not): ${proof.toFixed(2)} CPU-s/GiB`)
  return run
}

/** CPU-s per GiB of OpenSSL's sha512 over the file (in the page cache), or undefined if it could not run. */
function sha512Cpu (path: string, size: number): number | undefined {
  if (!existsSync('/usr/bin/time') || !existsSync('/usr/bin/openssl') || !existsSync(path)) return undefined
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '/usr/bin/openssl', 'dgst', '-sha512', path], { encoding: 'utf8' })
  const cpu = r.status === 0 ? timeCpu(r.stderr ?? '') : undefined
  return cpu === undefined ? undefined : cpu / (size / 2 ** 30)
}
