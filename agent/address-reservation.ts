import { createServer } from 'node:net'

/**
 * The API's address, bound before the agent opens its database or starts a download. The API
 * itself is built only after the first catalogue round (agent.ts, API_HEAD_START_MS), so a port
 * already taken used to be found once downloads had begun, and under systemd's
 * Restart=on-failure the agent then started them again every few seconds. The socket is held
 * until the API listens, so that nothing else takes the port in between.
 */
export interface AddressReservation {
  /** closes the held socket; idempotent */
  release: () => Promise<void>
}

/** Binds `host:port` (a TCP listener that accepts nothing); port 0 reserves nothing, since the API picks its own. */
export async function reserveAddress (host: string, port: number): Promise<AddressReservation> {
  if (port === 0) return { release: async () => {} }
  const server = createServer((socket) => { socket.destroy() })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port }, () => { server.off('error', reject); resolve() })
  })
  let released: Promise<void> | undefined
  return {
    release: async () => {
      released ??= new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      await released
    }
  }
}
