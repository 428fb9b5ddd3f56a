import { spawn } from 'node:child_process'
import t from 'tap'
import { dataPaths } from '../index-server/data-dir.js'
import { SiteKeys } from '../index-server/site-keys.js'
import { encodePublicKey, generateKeyPair } from '../lib/keys.js'
import { AGENT_BIN } from './helpers/agent-proc.js'
import { SIGNER_BIN } from './helpers/signer-run.js'
import { INDEX_BIN, makeServerDir } from './index-fixture.js'

/**
 * Output read by something that stops early (`imgdist-index sites list | head -1`, a pager quit
 * at once): every command used to die on the EPIPE with Node's "Unhandled 'error' event" and a
 * stack trace, exit 1, part way through (a publish piped into head stopped between uploads).
 * The built programs, with the reading end of their stdout closed before they write.
 */

async function withClosedStdout (bin: string, args: string[]): Promise<{ code: number | null, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy() // the reader is gone before the first write
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stderr }) })
  })
}

t.test('a closed stdout ends each command quietly, with its own exit status', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const sites = new SiteKeys(dataPaths(dataDir).sitesFile)
  for (let i = 0; i < 50; i++) await sites.add(`site-${i}`, encodePublicKey(generateKeyPair().publicKey))
  const cases: Array<[string, string, string[]]> = [
    ['imgdist-sign --help', SIGNER_BIN, ['--help']],
    ['imgdist-index --help', INDEX_BIN, ['--help']],
    ['imgdist-index sites list (many lines)', INDEX_BIN, ['sites', 'list', '--data-dir', dataDir]],
    ['imgdist-agent --help', AGENT_BIN, ['--help']]
  ]
  for (const [what, bin, args] of cases) {
    const r = await withClosedStdout(bin, args)
    t.equal(r.code, 0, what)
    t.equal(r.stderr, '', `${what}: nothing on stderr`)
  }
})
