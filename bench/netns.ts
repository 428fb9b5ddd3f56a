import { join } from 'node:path'
import { ImgdistError } from '../lib/errors.js'
import { buildDelayHub, startDelayHub, type DelayHub } from './delay-hub.js'
import { cleanupOnExit, killLive, run, tryRun } from './proc.js'

/**
 * A private test network: one hub namespace holding a bridge, and N host namespaces, each joined
 * to the bridge by a veth pair. Host i's uplink is a tbf qdisc on its own eth0 (egress), its
 * optional downlink cap a tbf on the hub-side veth. The /24 exists only inside these namespaces;
 * nothing touches the machine's own interfaces.
 *
 * With a one-way delay, each host's eth0 is a TAP device instead, and the hub namespace runs
 * bench/delay-hub.c, which forwards every frame between them `delayMs` late: this kernel has
 * neither netem nor fq, so nothing in tc can delay a packet. The uplink tbf is the same; a
 * downlink cap is then refused (the hub side has no qdisc to put it on).
 */

export interface TestbedOptions {
  hosts: number
  /** Mbit/s per host: index 0 is the origin */
  upMbit: number[]
  /** Mbit/s on every host's downlink; 0 = uncapped */
  downMbit: number
  delayMs: number
  /** where the delay hub is compiled and logs (needed when delayMs > 0) */
  workDir?: string
  prefix?: string
  subnet?: string
}

const PREFIX = 'imgb'
/** the bench's /24 unless a Testbed is given another; host i is `${SUBNET}.${i + 1}` (Testbed.ip) */
export const SUBNET = '10.213.77'

export class Testbed {
  readonly hub: string
  readonly names: string[]
  /** the user-space hub forwarding with a delay, when delayMs > 0 */
  delayHub: DelayHub | undefined
  private readonly o: TestbedOptions
  private readonly subnet: string

  constructor (o: TestbedOptions) {
    this.o = o
    const prefix = o.prefix ?? PREFIX
    this.subnet = o.subnet ?? SUBNET
    this.hub = `${prefix}-hub`
    this.names = Array.from({ length: o.hosts }, (_, i) => `${prefix}-h${i}`)
  }

  ip (i: number): string { return `${this.subnet}.${i + 1}` }

  /** argv prefix that runs a command inside host i */
  exec (i: number): string[] { return ['netns', 'exec', this.name(i)] }

  name (i: number): string {
    const n = this.names[i]
    if (n === undefined) throw new RangeError(`no host ${i}`)
    return n
  }

  async setup (): Promise<void> {
    this.teardown() // a run killed with SIGKILL leaves its namespaces behind: ours by name, so reclaim them
    const delay = this.o.delayMs > 0
    if (delay && this.o.downMbit > 0) throw new ImgdistError('USAGE', '--delay-ms and --down-mbit together are not supported: with a delay the hosts hang off a user-space hub, which has no qdisc for a downlink cap')
    const ipn = (ns: string, ...args: string[]): string => run('ip', ['-n', ns, ...args])
    const tc = (ns: string, ...args: string[]): string => run('ip', ['netns', 'exec', ns, 'tc', ...args])
    run('ip', ['netns', 'add', this.hub])
    ipn(this.hub, 'link', 'set', 'lo', 'up')
    if (!delay) {
      ipn(this.hub, 'link', 'add', 'br0', 'type', 'bridge')
      ipn(this.hub, 'link', 'set', 'br0', 'up')
    }
    for (let i = 0; i < this.o.hosts; i++) {
      const ns = this.name(i)
      const hubSide = `vh${i}`
      run('ip', ['netns', 'add', ns])
      ipn(ns, 'link', 'set', 'lo', 'up')
      if (delay) ipn(ns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap', 'vnet_hdr')
      else {
        ipn(this.hub, 'link', 'add', hubSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
        ipn(this.hub, 'link', 'set', hubSide, 'master', 'br0', 'up')
      }
      ipn(ns, 'addr', 'add', `${this.ip(i)}/24`, 'dev', 'eth0')
      ipn(ns, 'link', 'set', 'eth0', 'up')
      const up = this.o.upMbit[i] ?? this.o.upMbit[this.o.upMbit.length - 1] ?? 0
      // burst 64 kB keeps tbf close to its nominal rate at 50–1000 Mbit/s without big bursts
      if (up > 0) tc(ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', `${up}mbit`, 'burst', '64kb', 'latency', '50ms')
      if (this.o.downMbit > 0) tc(this.hub, 'qdisc', 'add', 'dev', hubSide, 'root', 'tbf', 'rate', `${this.o.downMbit}mbit`, 'burst', '64kb', 'latency', '50ms')
    }
    if (delay) {
      const dir = this.o.workDir
      if (dir === undefined) throw new ImgdistError('INTERNAL', 'Testbed: a delay needs workDir')
      const ports = this.names.map((ns) => ({ netnsPath: `/run/netns/${ns}`, ifname: 'eth0' }))
      this.delayHub = await startDelayHub(buildDelayHub(dir), this.hub, this.o.delayMs, ports, join(dir, 'delay-hub.log'))
    }
  }

  /** Idempotent: deletes every namespace of ours that exists (processes inside must be gone first). */
  teardown (): void {
    const existing = new Set((tryRun('ip', ['netns', 'list']) ?? '').split('\n').map((l) => l.split(' ')[0]))
    for (const ns of [...this.names, this.hub]) if (existing.has(ns)) tryRun('ip', ['netns', 'del', ns])
  }

  /** Bytes sent by host i's eth0 (Ethernet frames: payload plus TCP/IP/Ethernet headers). */
  txBytes (i: number): number { return this.tx(i).bytes }

  /** Bytes and frames sent by host i's eth0. */
  tx (i: number): { bytes: number, packets: number } {
    const j = JSON.parse(run('ip', ['-n', this.name(i), '-j', '-s', 'link', 'show', 'dev', 'eth0'])) as Array<{ stats64?: { tx?: { bytes?: number, packets?: number } } }>
    return { bytes: j[0]?.stats64?.tx?.bytes ?? NaN, packets: j[0]?.stats64?.tx?.packets ?? NaN }
  }

  /** Whether something in host i listens on TCP `port`. */
  listening (i: number, port: number): boolean {
    return (tryRun('ip', [...this.exec(i), 'ss', '-Hltn', `sport = :${port}`]) ?? '').trim() !== ''
  }
}

/** One namespace with only `lo`: loopback benchmarks that cannot collide with anything else on the machine. */
export class LoopbackHost {
  readonly name: string
  readonly ip = '127.0.0.1'
  constructor (name = `${PREFIX}-lo`) { this.name = name }
  get exec (): string[] { return ['netns', 'exec', this.name] }
  setup (): void {
    this.teardown()
    run('ip', ['netns', 'add', this.name])
    run('ip', ['-n', this.name, 'link', 'set', 'lo', 'up'])
  }

  teardown (): void {
    if ((tryRun('ip', ['netns', 'list']) ?? '').split('\n').some((l) => l.split(' ')[0] === this.name)) tryRun('ip', ['netns', 'del', this.name])
  }

  listening (port: number): boolean {
    return (tryRun('ip', [...this.exec, 'ss', '-Hltn', `sport = :${port}`]) ?? '').trim() !== ''
  }
}

/** A LoopbackHost for one bench run: it and every live child are removed however the run ends. */
export function loopbackBenchHost (name: string): LoopbackHost {
  const host = new LoopbackHost(name)
  cleanupOnExit(() => { killLive(); host.teardown() })
  return host
}
