import { createServer } from 'node:net'

/**
 * A TCP port free on 127.0.0.1 right now, for programs that need a fixed one on their command
 * line or in their config (foreign BitTorrent clients, Keystone and Glance, services under systemd).
 */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}
