import { isIP } from 'node:net'
import bencode from 'bencode'
import { canonicalHost } from './host-port.js'

/**
 * The extension protocol (BEP 10) as bytes, for its one use here: peer exchange (BEP 11,
 * `ut_pex`), through which connected peers tell each other whom else they are connected to, so
 * that an agent whose tracker is gone still finds the rest of the fleet. No sockets here; the
 * engine (swarm/pex.ts) decides what to send and when.
 *
 * Everything decoded comes from an untrusted peer: sizes, counts, types and port ranges are
 * checked, and a message that fails a check decodes to undefined (the caller ignores it; the
 * connection and its data are worth more than one bad gossip message).
 */

/** the message id of every extension message (BEP 10) */
export const EXTENDED = 20
/** reserved byte 5 (handshake byte 25), bit 0x10: "I speak BEP 10" */
export const EXTENSION_BYTE = 25
export const EXTENSION_BIT = 0x10
/** the id we ask peers to use for ut_pex messages sent to us (our extended handshake's `m`) */
export const OUR_PEX_ID = 1
/** BEP 11: at most 50 added and 50 dropped per message; we send no more and take no more */
export const PEX_MAX_PEERS = 50
/** the largest extension message decoded (a full ut_pex with IPv6 fits in under 4 KiB) */
export const MAX_EXTENSION_PAYLOAD = 64 * 1024

/** BEP 11 `added.f` flags we set and read */
export const PexFlag = { seed: 0x02, connectable: 0x10 } as const

export interface ExtendedHandshake {
  /** the peer's id for ut_pex messages we send it; undefined: it does not take them */
  pexId?: number
  /** the peer's listening port (`p`), which an incoming connection's remote port is not */
  port?: number
  /** the peer's client name and version (`v`), for operators */
  client?: string
}

export interface PexPeer { host: string, port: number, flags: number }
export interface PexMessage { added: PexPeer[], dropped: Array<{ host: string, port: number }> }

function message (extId: number, dict: Record<string, unknown>): Buffer {
  const body = bencode.encode(dict) as Uint8Array
  const b = Buffer.allocUnsafe(6 + body.length)
  b.writeUInt32BE(2 + body.length, 0)
  b[4] = EXTENDED
  b[5] = extId
  b.set(body, 6)
  return b
}

/** Our extended handshake, the whole message: ut_pex offered unless `pex` is false (a private torrent, or PEX turned off). */
export function encodeExtendedHandshake (opts: { pex: boolean, port?: number | undefined, client: string, reqq: number }): Buffer {
  const dict: Record<string, unknown> = { m: opts.pex ? { ut_pex: OUR_PEX_ID } : {}, v: opts.client, reqq: opts.reqq }
  if (opts.port !== undefined && opts.port > 0) dict.p = opts.port
  return message(0, dict)
}

function dictOf (payload: Uint8Array): Record<string, unknown> | undefined {
  if (payload.length > MAX_EXTENSION_PAYLOAD) return undefined
  let d: unknown
  try { d = bencode.decode(payload) } catch { return undefined }
  return d !== null && typeof d === 'object' && !(d instanceof Uint8Array) && !Array.isArray(d) ? d as Record<string, unknown> : undefined
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

/** The bencoded dict of an extended handshake (the payload after the extension id 0), or undefined if it is not one. */
export function decodeExtendedHandshake (payload: Uint8Array): ExtendedHandshake | undefined {
  const d = dictOf(payload)
  if (d === undefined) return undefined
  const out: ExtendedHandshake = {}
  const m = d.m
  if (m !== null && typeof m === 'object' && !(m instanceof Uint8Array)) {
    const id = (m as Record<string, unknown>).ut_pex
    // 0 means "disabled" (BEP 10); anything else out of a byte's range is nonsense
    if (isInt(id, 1, 255)) out.pexId = id
  }
  if (isInt(d.p, 1, 65535)) out.port = d.p
  if (d.v instanceof Uint8Array) out.client = Buffer.from(d.v.subarray(0, 64)).toString('utf8').replace(/[^\x20-\x7e]/g, '?')
  return out
}

function compact (hostIn: string, port: number): Buffer | undefined {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined
  // an IPv4 peer seen through an IPv6 socket (::ffff:a.b.c.d) goes out as IPv4
  const host = canonicalHost(hostIn)
  const v = isIP(host)
  if (v === 4) {
    const b = Buffer.allocUnsafe(6)
    host.split('.').forEach((o, i) => { b[i] = Number(o) })
    b.writeUInt16BE(port, 4)
    return b
  }
  if (v === 6) {
    const b = Buffer.alloc(18)
    const [head = '', tail = ''] = host.split('::')
    const hs = head === '' ? [] : head.split(':')
    const ts = host.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
    if ([...hs, ...ts].some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined // zone ids, embedded IPv4: not gossiped
    const groups = host.includes('::') ? [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts] : hs
    groups.forEach((g, i) => { b.writeUInt16BE(parseInt(g, 16), i * 2) })
    b.writeUInt16BE(port, 16)
    return b
  }
  return undefined
}

/**
 * A ut_pex message (the whole message, for the peer's `pexId`) with at most PEX_MAX_PEERS added
 * and dropped. Returns what went in: addresses that cannot be sent compact (zone ids, names) and
 * those over the limit are left out, and the caller remembers only what the peer was told.
 */
export function encodePex<A extends PexPeer, D extends { host: string, port: number }> (pexId: number, added: readonly A[], dropped: readonly D[]): { bytes: Buffer, added: A[], dropped: D[] } {
  const a = compactList(added)
  const d = compactList(dropped)
  const flags = (l: A[]): Buffer => Buffer.from(l.map((p) => p.flags))
  const dict: Record<string, unknown> = { added: Buffer.concat(a.v4.map(([, c]) => c)), 'added.f': flags(a.v4.map(([p]) => p)), dropped: Buffer.concat(d.v4.map(([, c]) => c)) }
  if (a.v6.length > 0 || d.v6.length > 0) {
    Object.assign(dict, { added6: Buffer.concat(a.v6.map(([, c]) => c)), 'added6.f': flags(a.v6.map(([p]) => p)), dropped6: Buffer.concat(d.v6.map(([, c]) => c)) })
  }
  return { bytes: message(pexId, dict), added: a.sent, dropped: d.sent }
}

/** The first PEX_MAX_PEERS of `list` that can be sent compact, with their compact forms by family. */
function compactList<T extends { host: string, port: number }> (list: readonly T[]): { sent: T[], v4: Array<[T, Buffer]>, v6: Array<[T, Buffer]> } {
  const out: { sent: T[], v4: Array<[T, Buffer]>, v6: Array<[T, Buffer]> } = { sent: [], v4: [], v6: [] }
  for (const p of list) {
    if (out.sent.length >= PEX_MAX_PEERS) break
    const c = compact(p.host, p.port)
    if (c === undefined) continue
    out.sent.push(p)
    ;(c.length === 6 ? out.v4 : out.v6).push([p, c])
  }
  return out
}

function hostOf (b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  const g: string[] = []
  for (let i = 0; i < 16; i += 2) g.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16))
  return canonicalHost(g.join(':'))
}

function peersOf (v: unknown, width: 6 | 18, flags?: unknown): PexPeer[] | undefined {
  if (v === undefined) return []
  if (!(v instanceof Uint8Array) || v.length % width !== 0) return undefined
  const f = flags instanceof Uint8Array ? flags : undefined
  const out: PexPeer[] = []
  for (let i = 0; i * width < v.length && out.length < PEX_MAX_PEERS; i++) {
    const c = v.subarray(i * width, (i + 1) * width)
    const port = ((c[width - 2] as number) << 8) | (c[width - 1] as number)
    if (port === 0) continue
    out.push({ host: hostOf(c.subarray(0, width - 2)), port, flags: f?.[i] ?? 0 })
  }
  return out
}

/**
 * A ut_pex payload (after the extension id). Lists longer than BEP 11's 50 are cut at 50; a
 * compact list whose length is not a whole number of addresses makes the message undefined.
 */
export function decodePex (payload: Uint8Array): PexMessage | undefined {
  const d = dictOf(payload)
  if (d === undefined) return undefined
  const a4 = peersOf(d.added, 6, d['added.f'])
  const a6 = peersOf(d.added6, 18, d['added6.f'])
  const d4 = peersOf(d.dropped, 6)
  const d6 = peersOf(d.dropped6, 18)
  if (a4 === undefined || a6 === undefined || d4 === undefined || d6 === undefined) return undefined
  return { added: [...a4, ...a6].slice(0, PEX_MAX_PEERS), dropped: [...d4, ...d6].slice(0, PEX_MAX_PEERS).map(({ host, port }) => ({ host, port })) }
}
