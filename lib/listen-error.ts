import { ImgdistError } from './errors.js'

/**
 * A port that could not be bound, said so that an operator can act: which address, which
 * setting names it, and why. Node's own "listen EADDRINUSE: address already in use :::6881"
 * reached the terminal with no code and no hint of the config field behind it.
 */
export function listenError (err: unknown, address: string, setting: string): ImgdistError {
  const e = err as { code?: string, message?: string }
  const why = e.code === 'EADDRINUSE'
    ? 'another process already listens there (another instance with the same setting?); stop it or choose another'
    : e.code === 'EADDRNOTAVAIL'
      ? 'no network interface of this host has that address'
      : e.code === 'EACCES'
        ? 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)'
        : e.message ?? String(err)
  return new ImgdistError('LISTEN_FAILED', `cannot listen on ${address} (${setting}): ${why}`, { cause: err })
}
