import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)

// `npm run demo` = build + this script: index server and three agents on loopback, end to end.
t.test('the demo runs end to end and prints the fleet table', { skip: existsSync('dist/bin/imgdist-index.js') ? false : 'dist/bin/imgdist-index.js is missing: run npm run build' }, async (t) => {
  const { stdout } = await run(process.execPath, ['dist/bench/demo.js'], { timeout: 120_000 })
  t.match(stdout, /SITE\s+IMAGE\s+STATE\s+FROM PEERS \(BT\)\s+FROM WEB SEED\s+UPLOADED TO PEERS/, 'fleet table header')
  for (const site of ['site-1', 'site-2', 'site-3']) t.match(stdout, new RegExp(`${site}\\s+demo-linux\\s+registered`), `${site} registered`)
  const shared = /(\d+(?:\.\d+)?) (B|KiB|MiB|GiB) \((\d+)%\) came from other sites/.exec(stdout)
  t.ok(shared !== null && Number(shared[1]) > 0, `sites fed each other: ${shared?.[0] ?? 'no line'}`)
  t.match(stdout, /every site verified sha512/)
  t.match(stdout, /all processes stopped cleanly/)
})
