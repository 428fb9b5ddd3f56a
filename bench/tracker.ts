import { Server } from 'bittorrent-tracker'

/**
 * A plain HTTP BitTorrent tracker for the aria2c runs (and for imgdist when the index server
 * does not run one): bittorrent-tracker's server, no UDP, no WebSocket, no whitelist.
 * usage: node dist/bench/tracker.js HOST PORT
 */

const [host = '127.0.0.1', port = '6969'] = process.argv.slice(2)
const server = new Server({ udp: false, ws: false, stats: false, interval: 5000 })
server.on('error', (err: Error) => { console.error(`tracker: ${err.message}`); process.exit(1) })
server.listen(Number(port), host, () => { console.log(`tracker listening on http://${host}:${port}/announce`) })
const stop = (): void => { server.close(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
