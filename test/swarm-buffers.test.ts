import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BufferPool } from '../swarm/buffer-pool.js'
import { pread, pwriteAll } from '../swarm/fd-io.js'
import { PieceStore } from '../swarm/piece-store.js'
import { PrefixHasher } from '../swarm/prefix-hasher.js'

// The engine's piece buffers: reused only when nothing reads a buffer any more.

const sha1 = (b: Uint8Array): Buffer => createHash('sha1').update(b).digest()

/** `pieces` random pieces of 16 KiB, their sha1s, and a temporary directory removed at teardown. */
async function storeFixture (t: { teardown: (fn: () => Promise<void>) => void }, pieces: number): Promise<{ dir: string, pieceLength: number, data: Buffer, hashes: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-store-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const pieceLength = 16 * 1024
  const data = randomBytes(pieceLength * pieces)
  const hashes = Buffer.concat(Array.from({ length: pieces }, (_, i) => sha1(data.subarray(i * pieceLength, (i + 1) * pieceLength))))
  return { dir, pieceLength, data, hashes }
}

t.test('buffer pool: a retired buffer is reused only after its last hold is released', async (t) => {
  const pool = new BufferPool(1024, 4096)
  const a = pool.take(1000)
  t.equal(a.length, 1000, 'a view of the length asked for')
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

t.test('piece store: a buffer read for upload is not reused while held, and is after the cache lets it go', async (t) => {
  const { dir, pieceLength, data, hashes } = await storeFixture(t, 6)
  await writeFile(join(dir, 'img'), data)
  const store = await PieceStore.open(join(dir, 'img'), data.length, pieceLength, hashes, { readOnly: true, cacheBytes: 2 * pieceLength })
  t.teardown(async () => { await store.close() })
  const kept: number[] = []
  t.equal(await store.scan((i) => kept.push(i)), data.length, 'every piece on disk passes its sha1')
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

t.test('piece store: the write backlog counts pieces until their write completes, and they stay readable meanwhile', async (t) => {
  const { dir, pieceLength, data, hashes } = await storeFixture(t, 8)
  const store = await PieceStore.open(join(dir, 'dl', 'img'), data.length, pieceLength, hashes, { cacheBytes: 2 * pieceLength })
  t.teardown(async () => { await store.close() })
  const writes: Array<Promise<void>> = []
  for (let i = 0; i < 8; i++) {
    const buf = store.pool.take(pieceLength)
    data.copy(buf, 0, i * pieceLength, (i + 1) * pieceLength)
    t.ok(store.verify(i, buf), `piece ${i} passes its sha1`)
    writes.push(store.write(i, buf))
  }
  t.equal(store.backlog, 8 * pieceLength, 'all eight are waiting for the disk')
  const early = store.cached(0)
  t.same(early, data.subarray(0, pieceLength), 'an unwritten piece is served from memory, past the cache size')
  if (early !== undefined) store.release(early)
  await Promise.all(writes)
  t.equal(store.backlog, 0, 'none once the writes completed')
  for (let i = 0; i < 8; i++) { const b = await store.read(i); t.same(b, data.subarray(i * pieceLength, (i + 1) * pieceLength)); store.release(b) }
})

t.test('piece store: pieces written in any order, the short last piece too, make the file byte for byte', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-store-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  // pieces go to disk in 128 KiB writes: whole, half and short chunks, in the last piece too
  const pieceLength = 320 * 1024
  const data = randomBytes(3 * pieceLength + 128 * 1024 + 12345)
  const count = 4
  const hashes = Buffer.concat(Array.from({ length: count }, (_, i) => sha1(data.subarray(i * pieceLength, Math.min(data.length, (i + 1) * pieceLength)))))
  const path = join(dir, 'dl', 'img')
  const store = await PieceStore.open(path, data.length, pieceLength, hashes)
  await Promise.all([3, 1, 0, 2].map(async (i) => {
    const len = store.pieceSize(i)
    const buf = store.pool.take(len)
    data.copy(buf, 0, i * pieceLength, i * pieceLength + len)
    await store.write(i, buf)
  }))
  await store.close()
  t.same(await readFile(path), data, 'the file is the image, byte for byte')
})

// The store reads and writes on its descriptor directly (swarm/fd-io.ts), not through the
// FileHandle, which would refuse once closed: from close() on, its number may belong to another
// file, so nothing new may start on it, and what started before must end before it is closed.
t.test('piece store: from close() on reads and writes are refused as IO_ERROR, and a file opened next is left alone', async (t) => {
  const { dir, pieceLength, data, hashes } = await storeFixture(t, 4)
  const path = join(dir, 'img')
  await writeFile(path, data)
  const store = await PieceStore.open(path, data.length, pieceLength, hashes, { cacheBytes: 2 * pieceLength })
  const inFlight = store.readBlock(1, 0, 1024) // issued before close(): close() waits for it
  await store.close()
  t.same(await inFlight, data.subarray(pieceLength, pieceLength + 1024), 'a read issued before close() completes')
  const other = join(dir, 'other')
  await writeFile(other, Buffer.alloc(4 * pieceLength))
  const fh = await open(other, 'r+') // most likely the store's old descriptor number
  t.teardown(async () => { await fh.close() })
  await t.rejects(store.readBlock(0, 0, 1024), { code: 'IO_ERROR' }, 'readBlock')
  await t.rejects(store.read(2), { code: 'IO_ERROR' }, 'read')
  const buf = store.pool.take(pieceLength)
  data.copy(buf, 0, 0, pieceLength)
  await t.rejects(store.write(0, buf), { code: 'IO_ERROR' }, 'write')
  t.same(await readFile(other), Buffer.alloc(4 * pieceLength), 'the other file is untouched')
})

t.test('piece store: a piece short on disk is an IO_ERROR naming the piece', async (t) => {
  const { dir, pieceLength, data, hashes } = await storeFixture(t, 4)
  const path = join(dir, 'img')
  await writeFile(path, data.subarray(0, 3 * pieceLength + 100))
  const store = await PieceStore.open(path, data.length, pieceLength, hashes)
  t.teardown(async () => { await store.close() })
  await t.rejects(store.read(3), { code: 'IO_ERROR', message: /piece 3 is short on disk \(100 of 16384 bytes\)/ })
  await t.rejects(store.readBlock(3, 0, 1024), { code: 'IO_ERROR', message: /piece 3 is short on disk \(100 of 1024 bytes at 0\)/ })
  const got = await store.read(2)
  t.same(got, data.subarray(2 * pieceLength, 3 * pieceLength), 'a whole piece reads back')
  store.release(got)
})

t.test('fd-io: pwriteAll writes every chunk and rejects with the error of a failed pwrite; pread stops at the end of the file', async (t) => {
  const { dir } = await storeFixture(t, 1)
  const path = join(dir, 'f')
  const data = randomBytes(300 * 1024 + 7)
  await writeFile(path, Buffer.alloc(0))
  const rw = await open(path, 'r+')
  t.teardown(async () => { await rw.close() })
  await pwriteAll(rw.fd, data, 0, data.length, 0, 128 * 1024)
  t.same(await readFile(path), data, 'three chunks, the last one short')
  const buf = Buffer.alloc(1024)
  t.equal(await pread(rw.fd, buf, 0, 1024, data.length - 10), 10, 'ten bytes before the end')
  t.equal(await pread(rw.fd, buf, 0, 1024, data.length), 0, 'none at the end')
  const ro = await open(path, 'r')
  t.teardown(async () => { await ro.close() })
  await t.rejects(pwriteAll(ro.fd, data, 0, 1024, 0, 512), { code: 'EBADF' }, 'a descriptor opened for reading refuses the write')
})

t.test('prefix hasher: the sha512 of a file advanced in steps that straddle its 128 KiB reads is the whole file\'s', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-prefix-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const data = randomBytes(3 * 128 * 1024 + 12345)
  const path = join(dir, 'image')
  await writeFile(path, data)
  const hasher = new PrefixHasher(path, data.length)
  t.teardown(async () => { await hasher.close() })
  for (const upTo of [1, 128 * 1024 - 1, 128 * 1024 + 17, 100, 300 * 1024, data.length, data.length + 5]) hasher.advance(upTo)
  t.equal(await hasher.digest, createHash('sha512').update(data).digest('hex'))
})
