import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { agentRun, writeAgentConfig } from './helpers/agent-proc.js'
import { indexCli, makeServerDir } from './index-fixture.js'

/**
 * A port already taken when imgdist-index or imgdist-agent starts (another instance, a second
 * agent with a copied config): the one-line error names the code, the address and the setting
 * to change. It was Node's bare "listen EADDRINUSE: address already in use …", without a code
 * (README: every error is `<program>: CODE: message`). The built programs, real sockets.
 */

async function occupied (t: { teardown: (fn: () => unknown) => void }): Promise<number> {
  const s: Server = createServer()
  await new Promise<void>((resolve) => { s.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { await new Promise((resolve) => s.close(resolve)) })
  return (s.address() as { port: number }).port
}

t.test('imgdist-index serve: the HTTP port and the torrent port in use', async (t) => {
  const { dataDir } = await makeServerDir(t)
  const port = await occupied(t)
  const http = await indexCli(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--torrent-port', '0', '--no-dht'])
  t.equal(http.code, 1, 'a runtime failure')
  t.match(http.stderr, new RegExp(`^imgdist-index: LISTEN_FAILED: cannot listen on 127\\.0\\.0\\.1:${port} \\(--listen, or listen: in the config\\): another process already listens there`))
  t.equal(http.stderr.trim().split('\n').length, 1, 'one line')

  const torrent = await indexCli(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--torrent-port', String(port), '--no-dht'])
  t.equal(torrent.code, 1)
  t.match(torrent.stderr, new RegExp(`^imgdist-index: SEEDER_START: cannot start the origin seeder: cannot listen on TCP port ${port} \\(--torrent-port, or seeding.torrentPort in the config\\): another process`))
})

t.test('imgdist-agent run: the API port and the torrent port in use', async (t) => {
  const { dir, fx } = await makeServerDir(t)
  const port = await occupied(t)
  // the catalogue's server counts what the agent asked before it gave up
  let requests = 0
  const catalogue = createHttpServer((_req, res) => { requests++; res.writeHead(404).end() })
  await new Promise<void>((resolve) => { catalogue.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { await new Promise((resolve) => catalogue.close(resolve)) })
  const { port: cataloguePort } = catalogue.address() as { port: number }
  const sub = { subscriptions: [{ url: `http://127.0.0.1:${cataloguePort}/v1/index.yaml`, root: fx.rootPath, pollInterval: '1m' }] }
  const api = await agentRun(await writeAgentConfig(join(dir, 'api'), 'site-p', { ...sub, api: { listen: `127.0.0.1:${port}` } }))
  t.equal(api.code, 1, 'a runtime failure')
  t.match(api.stderr, new RegExp(`^imgdist-agent: LISTEN_FAILED: cannot listen on 127\\.0\\.0\\.1:${port} \\(api\\.listen\\): another process already listens there`))
  t.equal(api.stderr.trim().split('\n').length, 1, 'one line')
  // found before the first catalogue round: under Restart=on-failure no download starts and stops every few seconds
  t.equal(requests, 0, 'the API port is checked before the catalogue is fetched')

  const torrent = await agentRun(await writeAgentConfig(join(dir, 'torrent'), 'site-q', {
    ...sub, swarm: { torrentPort: port, dht: { enabled: false }, lsd: false }
  }))
  t.equal(torrent.code, 1)
  t.match(torrent.stderr, new RegExp(`^imgdist-agent: LISTEN_FAILED: cannot listen on TCP port ${port} \\(swarm\\.torrentPort\\): another process`))
})
