import t from 'tap'
import { AgentConfigSchema } from '../agent/config-schema.js'
import { IndexSigned } from '../lib/schema.js'
import { INTERPRETED_CHECKS, SchemaCheck, schemaProblems } from '../lib/validate.js'

/**
 * lib/validate.ts interprets a schema's first checks and compiles it only once it is checked
 * often: compiling cost every agent 5–15 ms per schema at start-up for a config checked once.
 * The two ways must answer alike, or a config or catalogue would pass or fail depending on how
 * many were checked before it.
 */

const sha512 = 'a'.repeat(128)
const goodIndex = {
  type: 'index', name: 'hep', version: 3, issued: '2026-11-01T00:00:00Z', expires: '2026-12-01T00:00:00Z',
  images: [{
    id: 'alma9-2026.11', name: 'AlmaLinux 9', version: '2026.11', sha512, size: 1024, infoHash: 'b'.repeat(40), torrent: 'alma9.torrent',
    diskFormat: 'qcow2', containerFormat: 'bare', minDisk: 10, minRam: 0, arch: 'x86_64', os: 'linux', properties: {}
  }],
  revoked: []
}

t.test('a schema is interpreted for its first checks, then compiled, and both give the same verdicts', async (t) => {
  const check = new SchemaCheck(IndexSigned)
  const values: unknown[] = [goodIndex, { ...goodIndex, version: 'three' }, { ...goodIndex, images: [{ id: 'x' }] }, null, 'index']
  const interpreted: boolean[] = []
  for (let i = 0; i < INTERPRETED_CHECKS; i++) interpreted.push(check.check(values[i % values.length]))
  t.equal(check.compiled, false, `not compiled after ${INTERPRETED_CHECKS} checks`)
  const compiled = values.map((v) => check.check(v))
  t.equal(check.compiled, true, 'compiled once checked more often')
  t.same(interpreted.slice(0, values.length), compiled, 'the same verdicts before and after')
  t.equal(compiled[0], true, 'the good index passes')
  t.same(schemaProblems(IndexSigned, goodIndex), [], 'with no problems')
  t.same(compiled.slice(1), [false, false, false, false], 'and the bad ones are bad')
})

t.test('schemaProblems names the same fields on the first check and after compilation', async (t) => {
  const bad = {
    site: 'site-a', dataDir: '/var/lib/imgdist',
    subscriptions: [{ url: 'http://127.0.0.1:9/v1/index.yaml', root: 'root.yaml', pollInterval: '30d' }],
    targets: [{ type: 'nowhere' }],
    retry: { initial: 'soon' }
  }
  const first = schemaProblems(AgentConfigSchema, bad, 50)
  t.ok(first.some((l) => l.startsWith('subscriptions[0].pollInterval: ')), 'a bounded duration is named')
  t.ok(first.some((l) => l.startsWith('retry.initial: ')), 'a bad duration is named')
  for (let i = 0; i < INTERPRETED_CHECKS; i++) schemaProblems(AgentConfigSchema, bad, 50)
  t.same(schemaProblems(AgentConfigSchema, bad, 50), first, 'the same lines once compiled')
})
