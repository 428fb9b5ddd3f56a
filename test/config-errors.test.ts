import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { agentRun } from './helpers/agent-proc.js'
import { indexCli } from './index-fixture.js'

/**
 * What an operator reads when a config is wrong, from the built programs: every bad field with
 * what it takes, in words. A bounded duration used to be described by the name of its internal
 * check ("Expected string to match 'imgdist-timer-duration-2147483647' format"), and a duration
 * or "0" only as "Expected union value". A config file imgdist-index cannot read exits 2 (bad
 * config), as imgdist-agent's does and both --help pages say; it exited 1. A file that is not
 * YAML ended its one line with the colon that led into the parser's code frame.
 */

t.test('imgdist-agent: durations out of bounds, or neither a duration nor "0", are named with what they take', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-config-errors-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const cfg = join(dir, 'agent.yaml')
  await writeFile(cfg, [
    'site: site-c', `dataDir: ${join(dir, 'data')}`,
    'subscriptions:', '  - url: http://127.0.0.1:9/v1/index.yaml', '    root: root.yaml', '    pollInterval: 30d',
    'policy:', '  retireGrace: 5x',
    'retry:', '  initial: soon', ''
  ].join('\n'))
  const r = await agentRun(cfg)
  t.equal(r.code, 2, 'a bad config')
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  t.match(r.stderr, /subscriptions\[0\]\.pollInterval: "30d" is not valid: how often to look for a new index: a duration like 5m \(s, m, h, d, w\), above 0 and at most 24d;/)
  t.match(r.stderr, /policy\.retireGrace: "5x" is not valid: how long to wait before retiring an image: "0" \(at once\) or a duration like 1h/)
  t.match(r.stderr, /retry\.initial: "soon" is not valid: first wait before retrying/)
  t.notMatch(r.stderr, /imgdist-timer-duration|Expected union value/, 'no internal names, no bare "union"')
})

t.test('imgdist-index serve: a bad duration in words; an unreadable config file is a config error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-config-errors-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const cfg = join(dir, 'index.yaml')
  await writeFile(cfg, `dataDir: ${join(dir, 'data')}\nlisten: 127.0.0.1:0\nlimits:\n  idleTimeout: 5x\n`)
  const bad = await indexCli(['serve', '--config', cfg])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /limits\.idleTimeout: "5x" is not valid: drop a connection idle for this long: a duration like 2m/)
  t.notMatch(bad.stderr, /imgdist-timer-duration/)

  // not YAML: the parser's reason and where, with no dangling colon that led into its code frame
  await writeFile(cfg, 'listen: [oops\n')
  const notYaml = await indexCli(['serve', '--config', cfg])
  t.equal(notYaml.code, 2)
  t.match(notYaml.stderr, /^imgdist-index: CONFIG_INVALID: \S+ is not valid YAML: .* at line 2, column 1\n$/, notYaml.stderr)

  const missing = await indexCli(['serve', '--config', join(dir, 'nonexistent.yaml')])
  t.equal(missing.code, 2, 'exit 2, as for imgdist-agent run --config with a missing file')
  t.match(missing.stderr, /^imgdist-index: CONFIG_INVALID: cannot read config .*nonexistent\.yaml: ENOENT\n$/)
})
