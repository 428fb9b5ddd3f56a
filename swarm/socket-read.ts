import { connect, Socket } from 'node:net'

/**
 * Peer sockets read into one buffer shared by every connection, through Node's `onread` option,
 * instead of emitting a freshly allocated Buffer per read as 'data'.
 *
 * Why: behind a shaped link a peer's bytes arrive a few KiB per read, and each 'data' chunk is a
 * new ArrayBuffer plus a trip through the stream machinery. On the loopback pair (bench/engine-pair.ts)
 * the shared buffer took the downloader from 5.96 to 4.88 CPU-s/GiB, most of it garbage
 * collection. It is safe because every read is handed to the wire decoder synchronously, and the
 * decoder keeps no view of a chunk after push() returns (lib/peer-wire.ts).
 */

/** Whatever consumes a connection's bytes; set once the connection's owner exists. */
export interface ReadSink { receive: (chunk: Buffer) => void }

const READ_BUFFER_BYTES = 256 * 1024
const shared = Buffer.allocUnsafe(READ_BUFFER_BYTES)

function onread (sink: () => ReadSink | undefined): { buffer: Buffer, callback: (n: number) => boolean } {
  return { buffer: shared, callback: (n) => { sink()?.receive(shared.subarray(0, n)); return true } }
}

/** An outgoing connection whose reads go to `sink()` (undefined until the caller has built it: bytes before that are dropped, and none can come before our handshake is sent). */
export function dial (host: string, port: number, sink: () => ReadSink | undefined): Socket {
  return connect({ host, port, onread: onread(sink) })
}

interface HandleSocket { _handle?: unknown }

/**
 * An accepted connection (from a server made with `pauseOnConnect: true`, so nothing has been
 * read yet), moved onto the shared buffer. net.Server has no `onread` option, so the accepted
 * socket's handle is wrapped in a new Socket that has one, and the server's socket is retired
 * without closing the handle (it still counts in the server's connections until destroyed).
 * `_handle` is private to Node: if it is ever missing, the server's socket is used with 'data'
 * events, which work the same, only slower.
 */
export function adopt (accepted: Socket, sink: () => ReadSink | undefined): Socket {
  const raw = accepted as unknown as HandleSocket
  if (raw._handle === undefined || raw._handle === null) {
    accepted.on('data', (chunk: Buffer) => { sink()?.receive(chunk) })
    accepted.resume() // paused on connect
    return accepted
  }
  const handle = raw._handle
  raw._handle = null
  accepted.destroy()
  return new Socket({ handle, readable: true, writable: true, onread: onread(sink) } as unknown as ConstructorParameters<typeof Socket>[0])
}
