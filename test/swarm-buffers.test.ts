import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { BufferPool } from '../swarm/buffer-pool.js'

// The engine's piece buffers: reuse only when nothing reads a buffer any more, and the sha1
// worker that reads them in place. The checker and store run from the built dist/ code, since
// the worker is loaded from a file next to them.

const sha1 = (b: Uint8Array): Buffer => createHash('sha1').update(b).digest()

t.test('buffer pool: a retired buffer is reused only after its last hold is released', async (t) => {
  const pool = new BufferPool(1024, 4096)
  const a = pool.take(1000)
  t.equal(a.length, 1000, 'a view of the length asked for')
  t.ok(a.buffer instanceof SharedArrayBuffer, 'shared, so that the sha1 worker reads it in place')
  pool.hold(a) // a socket write of one of its blocks
  pool.hold(a.subarray(16, 32)) // another, through a view
  pool.retire(a)
  const b = pool.take(1024)
  t.not(b.buffer, a.buffer, 'held: not handed out again')
  pool.release(a)
  t.not(pool.take(1024).buffer, a.buffer, 'one hold left: still not')
  pool.release(a)
  const c = pool.take(512)
  t.equal(c.buffer, a.buffer, 'the last release frees it for reuse')
  t.equal(pool.reused, 1)
  t.throws(() => pool.take(2048), RangeError, 'never larger than the piece size')
})

t.test('buffer pool: foreign buffers are ignored, a retired buffer is not freed twice, the free list is bounded', async (t) => {
  const pool = new BufferPool(1024, 2048) // keeps 2
  const foreign = Buffer.alloc(1024)
  pool.hold(foreign); pool.release(foreign); pool.retire(foreign)
  t.not(pool.take(1024).buffer, foreign.buffer, 'a web seed\'s buffer never enters the pool')
  const x = pool.take(1024)
  pool.retire(x)
  pool.retire(x)
  const y = pool.take(1024)
  const z = pool.take(1024)
  t.equal(y.buffer, x.buffer, 'reused once')
  t.not(z.buffer, x.buffer, 'not twice from a double retire')
  const many = [pool.take(1024), pool.take(1024), pool.take(1024), pool.take(1024)]
  for (const m of many) pool.retire(m)
  const again = [pool.take(1024), pool.take(1024), pool.take(1024)]
  t.equal(again.filter((g) => many.some((m) => m.buffer === g.buffer)).length, 2, 'at most keepBytes of idle buffers are kept')
})

t.test('sha1 checker: pooled and ordinary buffers, good and bad, many at once', async (t) => {
  const { Sha1Checker } = await import(resolve('dist/swarm/sha1-checker.js')) as typeof import('../swarm/sha1-checker.js')
  const checker = new Sha1Checker()
  t.teardown(async () => { await checker.close() })
  const pool = new BufferPool(64 * 1024)
  const pieces = Array.from({ length: 20 }, (_, i) => {
    const b = i % 2 === 0 ? pool.take(64 * 1024 - i) : Buffer.allocUnsafe(64 * 1024 - i)
    randomBytes(b.length).copy(b)
    return b
  })
  const results = await Promise.all(pieces.map(async (p, i) => await checker.check(p, i % 3 === 0 ? Buffer.alloc(20) : sha1(p))))
  t.same(results, pieces.map((_, i) => i % 3 !== 0), 'each answer belongs to its own piece')
  await checker.close()
  await t.rejects(checker.check(pieces[0] as Buffer, sha1(pieces[0] as Buffer)), { code: 'ABORTED' }, 'closed: refuses, does not hang')
})

t.test('piece store: a buffer read for upload is not reused while held, and is after the cache lets it go', async (t) => {
  const { Sha1Checker } = await import(resolve('dist/swarm/sha1-checker.js')) as typeof import('../swarm/sha1-checker.js')
  const { PieceStore } = await import(resolve('dist/swarm/piece-store.js')) as typeof import('../swarm/piece-store.js')
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-store-'))
  const checker = new Sha1Checker()
  t.teardown(async () => { await checker.close(); await rm(dir, { recursive: true, force: true }) })
  const pieceLength = 16 * 1024
  const data = randomBytes(pieceLength * 6)
  const hashes = Buffer.concat(Array.from({ length: 6 }, (_, i) => sha1(data.subarray(i * pieceLength, (i + 1) * pieceLength))))
  await writeFile(join(dir, 'img'), data)
  const store = await PieceStore.open(join(dir, 'img'), data.length, pieceLength, hashes, { readOnly: true, cacheBytes: 2 * pieceLength, checker })
  t.teardown(async () => { await store.close() })
  const kept: number[] = []
  t.equal(await store.scan((i) => kept.push(i)), data.length, 'every piece on disk passes its sha1 (on the worker)')
  const first = await store.read(0) // held by us, as #serve holds it across a socket write
  const firstBytes = Buffer.from(first)
  for (let i = 1; i < 6; i++) store.release(await store.read(i)) // pushes piece 0 out of the 2-piece cache
  t.same(first, firstBytes, 'held: its bytes were not overwritten by the reads that followed')
  store.release(first)
  const reusedBefore = store.pool.reused
  store.release(await store.read(0))
  store.release(await store.read(1))
  t.ok(store.pool.reused > reusedBefore, 'released and evicted buffers are reused')
  for (let i = 0; i < 6; i++) {
    const b = await store.read(i)
    t.same(b, data.subarray(i * pieceLength, (i + 1) * pieceLength), `piece ${i} reads back right through reused buffers`)
    store.release(b)
  }
})
