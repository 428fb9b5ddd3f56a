import { utimes } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { imageWhere, seededOrigin } from './helpers/agent-seeded-origin.js'
import type { AgentProc } from './helpers/agent-proc.js'

/**
 * A site's cache seeds again after every restart. The file that passed the signed sha512 and is
 * provably unchanged since (path, size, mtime, inode, device: agent/verified-file.ts) is seeded
 * without reading it: a site with hundreds of GB cached would otherwise sha1 every piece at each
 * start. A file whose identity changed is checked piece by piece first. Real agents, real LevelDB,
 * a real swarm: the restarted site is the only seed left for a second site.
 */

const checkedLine = (a: AgentProc): boolean => a.logs.some((l) => l.includes('"msg":"the cached file is not provably the one verified: checking its pieces before seeding it"'))

t.test('a registered image seeds after a restart without its pieces being read; a touched one is checked first', async (t) => {
  const { dir, entry, seeder, sub, startSite, startAgent } = await seededOrigin(t, 'imgdist-reseed-', { id: 'reseed', size: 1024 * 1024, pieceLength: 16 * 1024 })
  const a = await startSite('site-a')
  await imageWhere(t, a, 'registered', (i) => i.id === entry.id && i.state === 'registered')
  t.equal(await a.stop('SIGTERM'), 0)

  const b = await startAgent(join(dir, 'site'), 'site-a', {}, a.configPath)
  const seeding = await imageWhere(t, b, 'seeding again', (i) => i.id === entry.id && i.seeding === true)
  t.equal(seeding.resumedBytes, 0, 'no piece read from disk')
  t.notOk(checkedLine(b), 'nor a check logged')
  t.equal(seeding.state, 'registered')

  // the restarted site is the only seed: a second site gets every byte from it
  await seeder.close()
  const other = await startAgent(join(dir, 'other'), 'site-other', { subscriptions: sub })
  const got = await imageWhere(t, other, 'registered from the restarted site', (i) => i.id === entry.id && i.state === 'registered', 30_000)
  t.equal(got.bytesFromPeers, entry.size, 'every byte from a peer (the torrent has no web seed)')
  t.equal(await other.stop('SIGTERM'), 0)
  t.equal(await b.stop('SIGTERM'), 0)

  // another mtime: the same bytes, but not provably the file that passed, so every piece is checked
  const file = join(b.dir, 'data', 'downloads', entry.infoHash, entry.id)
  const later = new Date(Date.now() + 60_000)
  await utimes(file, later, later)
  const c = await startAgent(join(dir, 'site'), 'site-a', {}, a.configPath)
  const checked = await imageWhere(t, c, 'seeding after the check', (i) => i.id === entry.id && i.seeding === true && i.resumedBytes > 0)
  t.equal(checked.resumedBytes, entry.size, 'every piece read and kept')
  t.ok(checkedLine(c), 'the log says why')
  t.equal(await c.stop('SIGTERM'), 0)
})
