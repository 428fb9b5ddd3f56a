/**
 * "host:port" addresses as the programs write them: config `listen` fields, peers from trackers,
 * the DHT and PEX, and the swarm's keys for them. An IPv6 host is bracketed ("[::1]:6881") so
 * that the port is whatever follows the last colon.
 */

/** The host (brackets removed) and port; the port is NaN or out of range for text that is not one (check it with isPort where the text is untrusted). */
export function splitHostPort (addr: string): { host: string, port: number } {
  const i = addr.lastIndexOf(':')
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) }
}

export function joinHostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

export const isPort = (port: number): boolean => Number.isInteger(port) && port > 0 && port <= 65535
