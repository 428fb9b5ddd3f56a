import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { BLOCK_LENGTH } from '../lib/peer-wire.js'
import { PeerConn } from '../swarm/peer-conn.js'
import { PieceStore } from '../swarm/piece-store.js'
import { TokenBucket } from '../swarm/rate-meter.js'
import { serve, type UploadDeps } from '../swarm/upload.js'

// What the upload loop counts as uploaded (the agent saves it per image): blocks handed to a socket.

t.test('a peer that closes while its block is read from disk is not counted as sent that block', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imgdist-upload-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const pieceLength = 4 * BLOCK_LENGTH
  const data = randomBytes(2 * pieceLength)
  const hashes = Buffer.concat([0, 1].map((i) => createHash('sha1').update(data.subarray(i * pieceLength, (i + 1) * pieceLength)).digest()))
  await writeFile(join(dir, 'img'), data)
  const store = await PieceStore.open(join(dir, 'img'), data.length, pieceLength, hashes, { readOnly: true })
  t.teardown(async () => { await store.close() })

  // a real TCP connection; our end is the PeerConn, the other end only reads
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const conn = async (): Promise<PeerConn> => {
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
    const client = connect((server.address() as { port: number }).port, '127.0.0.1')
    client.resume()
    t.teardown(() => { client.destroy() })
    const peer = new PeerConn(await accepted, 'peer', 'incoming', () => {})
    t.teardown(() => { peer.destroy('test over') })
    peer.setChoking(false)
    return peer
  }
  let sent = 0
  const deps: UploadDeps = {
    log: pino({ level: 'silent' }), bucket: new TokenBucket(0), hasPiece: () => true, store: () => store, stopped: () => false,
    sent: (r) => { sent += r.length }
  }

  const open = await conn()
  open.uploadQueue.push({ index: 0, begin: 0, length: BLOCK_LENGTH })
  await serve(open, deps)
  t.equal(sent, BLOCK_LENGTH, 'a block to an open peer is counted')

  const closing = await conn()
  closing.uploadQueue.push({ index: 1, begin: 0, length: BLOCK_LENGTH })
  const serving = serve(closing, deps)
  // the loop now waits for piece 1 from disk (not read before, so not cached)
  t.equal(store.cached(1), undefined, 'piece 1 was never read: serve waits for it from disk')
  closing.destroy('went away')
  await serving
  t.equal(sent, BLOCK_LENGTH, 'the block read for a peer that closed meanwhile is not counted')
})
