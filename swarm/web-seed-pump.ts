import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import type { PendingPiece, PiecePicker } from './piece-picker.js'
import type { WebSeed } from './web-seed.js'

/**
 * Keeps a torrent's web seeds busy with whole pieces: pieces no connected peer has, or any
 * piece while the peers are quiet (starving) or absent. A piece a web seed brings is handed to
 * the session like one assembled from peers' blocks, unless the peers completed it first.
 */

export interface WebSeedHost {
  readonly picker: PiecePicker
  readonly webSeeds: WebSeed[]
  readonly pieceLength: number
  readonly log: Logger
  readonly dispatcher: Dispatcher | undefined
  readonly signal: AbortSignal
  stopped: () => boolean
  /** bytes arrived from a web seed (counters, the starving clock) */
  received: (bytes: number) => void
  /** a web seed brought the whole piece (now in `p.buf`; `replaced`: the buffer of what peers had sent of it): check and keep it */
  complete: (p: PendingPiece, replaced: Buffer | undefined) => void
}

export function pumpWebSeeds (host: WebSeedHost, any: boolean): void {
  for (const ws of host.webSeeds) {
    while (ws.usable) {
      const i = pieceFor(host.picker, any)
      if (i < 0) return
      void fetchPiece(host, ws, i)
    }
  }
}

/** A piece no connected peer has (or, when `any`, any piece) that nobody is fetching yet. */
function pieceFor (picker: PiecePicker, any: boolean): number {
  const n = picker.count
  const start = Math.floor(Math.random() * n)
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n
    if (picker.hasPiece(i) || picker.pending.has(i)) continue
    if (any || picker.avail[i] === 0) return i
  }
  return -1
}

async function fetchPiece (host: WebSeedHost, ws: WebSeed, i: number): Promise<void> {
  const p = host.picker.reserve(i)
  const cut = p.webSeedFetch = new AbortController()
  ws.inFlight++
  try {
    const buf = await ws.fetch(i * host.pieceLength, p.length, host.dispatcher, AbortSignal.any([host.signal, cut.signal]))
    delete p.webSeedFetch
    host.received(buf.length)
    if (host.picker.pending.get(i) !== p) return // peers finished it first (a complete piece is checked and settled at once)
    ws.failures = 0
    // The web seed's copy replaces whatever peers had sent of the piece.
    const replaced = p.buf
    p.buf = buf
    p.state.fill(2)
    p.received = p.blocks
    p.from = new Set([ws.url])
    host.complete(p, replaced)
  } catch (err) {
    if (host.stopped()) return
    if (cut.signal.aborted) { ws.cutOff++; return } // peers completed it first: not the seed's failure
    ws.failed()
    host.log.debug({ webSeed: ws.url, err: (err as Error).message }, 'web seed request failed')
    host.picker.forget(p)
  } finally {
    ws.inFlight--
  }
}
