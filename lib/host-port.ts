import { isIP } from 'node:net'

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

const MAPPED = /^::ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/

/**
 * One spelling per address, so that the same peer heard of from a socket, a tracker, the DHT and
 * PEX is one key: IPv6 in RFC 5952 form (lower case, the longest run of zeros as "::"), which is
 * what the kernel gives for a socket's address, and an IPv4-mapped IPv6 address (how a dual-stack
 * listener sees an IPv4 peer) as plain IPv4. Without it a peer whose PEX entry said
 * "0:0:0:0:0:0:0:1" was never matched with its connection from "::1", and was dialled again every
 * second. Anything else (names, zone ids, nonsense) is returned unchanged.
 */
export function canonicalHost (host: string): string {
  if (isIP(host) !== 6 || host.includes('%')) return host
  const h = new URL(`http://[${host}]/`).hostname.slice(1, -1) // the WHATWG URL serializer is RFC 5952's
  const m = MAPPED.exec(h)
  if (m === null) return h
  if (m[1] !== undefined) return m[1]
  const hi = parseInt(m[2] as string, 16)
  const lo = parseInt(m[3] as string, 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}

/** The host and port of untrusted text, or undefined if there is no host or no valid port. */
export function parseHostPort (addr: string): { host: string, port: number } | undefined {
  const a = splitHostPort(addr)
  return a.host !== '' && isPort(a.port) ? a : undefined
}

/** "host:port" with the host in canonicalHost's spelling, or undefined if parseHostPort refuses it. */
export function canonicalAddr (addr: string): string | undefined {
  const a = parseHostPort(addr)
  return a === undefined ? undefined : joinHostPort(canonicalHost(a.host), a.port)
}
