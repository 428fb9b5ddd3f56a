import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

/**
 * How fast does `imgdist-sign add` hash an image, against `sha512sum` on the same file?
 * Target (issue 2): within 1.5x. Runs each tool --runs times on a warm page cache and reports
 * the best wall time of each (the least disturbed by other load on a shared machine).
 *
 *   node dist/bench/hash-speed.js [--size-mib 1024] [--runs 3] [--dir /tmp]
 */

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '3' }, dir: { type: 'string', default: tmpdir() } }
})
const sizeMiB = Number(values['size-mib'])
const runs = Number(values.runs)
if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: node dist/bench/hash-speed.js [--size-mib N] [--runs N] [--dir DIR]')
  process.exit(2)
}
const signer = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'imgdist-sign.js')

async function timed (cmd: string, args: string[]): Promise<number> {
  const start = process.hrtime.bigint()
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    child.on('error', reject)
    child.on('exit', (code) => code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`)))
  })
  return Number(process.hrtime.bigint() - start) / 1e9
}

const dir = await mkdtemp(join(values.dir, 'imgdist-hash-speed-'))
try {
  const file = join(dir, 'image.raw')
  const fh = await open(file, 'w')
  const chunk = 4 * 1024 * 1024
  for (let left = sizeMiB * 1024 * 1024; left > 0; left -= chunk) await fh.write(randomBytes(Math.min(chunk, left)))
  await fh.close()
  await timed('sha512sum', [file]) // warm the page cache: we compare hashing, not the disk

  const best: Record<string, number> = {}
  const record = (name: string, secs: number): void => { best[name] = Math.min(best[name] ?? Infinity, secs) }
  for (let r = 0; r < runs; r++) {
    record('sha512sum', await timed('sha512sum', [file]))
    for (const threads of ['2', '1']) {
      const index = join(dir, `index-${threads}.yaml`)
      await rm(index, { force: true })
      record(`add --hash-threads ${threads}`, await timed(process.execPath, [signer, 'add', file, '--index', index, '--catalogue', 'bench',
        '--id', 'bench', '--version', '1', '--disk-format', 'raw', '--torrent-dir', join(dir, 'torrents'), '--hash-threads', threads]))
    }
  }
  const base = best.sha512sum as number
  console.log(`file ${sizeMiB} MiB, best of ${runs} runs, warm page cache`)
  console.log(`cpu ${cpus()[0]?.model ?? '?'} x${cpus().length}, node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  for (const [name, secs] of Object.entries(best)) {
    const mibs = sizeMiB / secs
    console.log(`${name.padEnd(22)} ${secs.toFixed(3).padStart(8)} s ${mibs.toFixed(0).padStart(6)} MiB/s  ratio ${(secs / base).toFixed(2)}x sha512sum`)
  }
  const ratio = (best['add --hash-threads 2'] as number) / base
  console.log(`default (2 threads): ${ratio.toFixed(2)}x sha512sum; target <= 1.50x: ${ratio <= 1.5 ? 'met' : 'NOT met'}`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
