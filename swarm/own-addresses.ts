import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import { canonicalHost } from '../lib/host-port.js'

const LOOPBACK = ['127.0.0.1', '::1', 'localhost']
const REREAD_MS = 60_000

/**
 * Whether a host is one of this machine's addresses. A tracker lists every peer it knows under
 * the address it saw, us included. Such a dial would end in our own accept side, which answers
 * and is then banned (connector.ts, accept); skipping it spares the connection. Interfaces are
 * read at most once a minute. Reading them needs a netlink socket: a sandbox that forbids one (a
 * systemd unit whose RestrictAddressFamilies= lacks AF_NETLINK) makes networkInterfaces() throw,
 * and thrown from a tracker's 'peer' event, that killed the process at its first announce.
 * Without the list only loopback is skipped; a dial to ourselves still ends at the handshake.
 */
export class OwnAddresses {
  readonly #log: Logger
  #read: { at: number, addrs: Set<string> } | undefined

  constructor (log: Logger) { this.#log = log }

  has (host: string): boolean {
    const now = Date.now()
    if (this.#read === undefined || now - this.#read.at > REREAD_MS) {
      const addrs = new Set(LOOPBACK)
      try {
        for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) addrs.add(canonicalHost(a.address))
      } catch (err) {
        if (this.#read === undefined) this.#log.warn({ err: (err as Error).message }, 'cannot list this machine\'s network addresses (is AF_NETLINK allowed?); dials to them end at the handshake instead')
      }
      this.#read = { at: now, addrs }
    }
    return this.#read.addrs.has(canonicalHost(host))
  }
}
