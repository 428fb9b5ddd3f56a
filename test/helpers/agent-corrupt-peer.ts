import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import Wire from 'bittorrent-protocol'
import { Client as TrackerClient } from 'bittorrent-tracker'

/**
 * A raw BitTorrent peer that claims every piece and answers every request with flipped bytes:
 * what a buggy or malicious site looks like to the swarm. It announces itself to the tracker.
 */
export interface CorruptPeer { port: number, requests: number, close: () => Promise<void> }

export async function startCorruptPeer (opts: { infoHash: string, filePath: string, size: number, pieceLength: number, announce: string }): Promise<CorruptPeer> {
  const peerId = randomBytes(20).toString('hex')
  const pieces = Math.ceil(opts.size / opts.pieceLength)
  const bits = new Uint8Array(Math.ceil(pieces / 8))
  for (let i = 0; i < pieces; i++) bits[i >> 3] = (bits[i >> 3] as number) | (0x80 >> (i % 8))
  const fh = await open(opts.filePath, 'r')
  const sockets = new Set<Socket>()
  const state = { port: 0, requests: 0 }
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const wire = new Wire()
    wire.on('error', () => {})
    socket.pipe(wire).pipe(socket)
    wire.on('handshake', (infoHash: string) => {
      if (infoHash !== opts.infoHash) { wire.destroy(); return }
      wire.handshake(opts.infoHash, peerId, { dht: false })
      wire.bitfield(bits)
    })
    wire.on('interested', () => { wire.unchoke() })
    wire.on('request', (index: number, offset: number, length: number, respond: (err: Error | null, buf?: Uint8Array) => void) => {
      state.requests++
      const buf = Buffer.alloc(length)
      fh.read(buf, 0, length, index * opts.pieceLength + offset).then(() => {
        for (let i = 0; i < buf.length; i += 512) buf[i] = (buf[i] as number) ^ 0x5a
        respond(null, buf)
      }, (err: Error) => { respond(err) })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.port = (server.address() as { port: number }).port
  const tracker = new TrackerClient({ infoHash: opts.infoHash, peerId, announce: [opts.announce], port: state.port })
  tracker.on('error', () => {})
  tracker.on('warning', () => {})
  tracker.start()
  return {
    get port () { return state.port },
    get requests () { return state.requests },
    close: async () => {
      tracker.destroy()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
      await fh.close()
    }
  }
}
