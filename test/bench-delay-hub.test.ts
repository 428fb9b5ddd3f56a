import t from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Testbed } from '../bench/netns.js'
import { killLive, tryRun, waitUntil } from '../bench/proc.js'

/**
 * bench:swarm --delay-ms against the real thing: two network namespaces joined through the
 * user-space delay hub (bench/delay-hub.c, compiled here with the machine's cc), a TCP
 * connection between them, and 16 MiB across it. The hub stands in for netem, which the bench
 * machine's kernel lacks; what it must do is hold every frame for the delay, lose nothing,
 * and carry TCP's large offloaded frames intact.
 */

const have = (cmd: string): boolean => tryRun('which', [cmd]) !== undefined
// Loud skip: these need root (namespaces, TAP devices) and a C compiler; CI runs as root and
// test/setup/install-tools.sh installs gcc and iproute2.
const missing = process.getuid?.() !== 0
  ? 'needs root (network namespaces and TAP devices)'
  : !existsSync('/dev/net/tun') ? 'needs /dev/net/tun'
  : !have('ip') ? 'needs ip (apt-get install iproute2)'
  : !have('cc') && !have('gcc') ? 'needs a C compiler (apt-get install gcc)'
  : false
if (missing !== false) console.error(`\n*** SKIPPING the delay hub tests: ${missing} ***\n`)

/** Runs a Node script in namespace `ns`; its stdout, trimmed. */
async function inNs (ns: string, script: string, args: string[] = []): Promise<string> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  p.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => p.once('close', resolve))
  if (code !== 0) throw new Error(`node in ${ns} exited ${String(code)}: ${out}`)
  return out.trim()
}

// Echoes back the sha1 and length of what it got, then closes; one connection.
const SERVER = `
const net = require('net'), crypto = require('crypto')
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha1'); let n = 0
  s.on('data', (d) => { h.update(d); n += d.length })
  s.on('end', () => { s.end(JSON.stringify({ n, sha1: h.digest('hex') })); srv.close() })
}).listen(5001, () => console.log('listening'))
`
// Connects (timing the handshake), sends MiB of random bytes, prints what both ends counted.
const CLIENT = `
const net = require('net'), crypto = require('crypto')
const [host, mib] = process.argv.slice(1)
const t0 = process.hrtime.bigint()
const s = net.connect(5001, host, () => {
  const connectMs = Number(process.hrtime.bigint() - t0) / 1e6
  const h = crypto.createHash('sha1'); let i = 0
  const w = () => { while (i < Number(mib)) { const b = crypto.randomBytes(1 << 20); h.update(b); i++; if (!s.write(b)) return s.once('drain', w) } s.end() }
  w()
  let got = ''
  s.on('data', (d) => { got += d })
  s.on('end', () => { console.log(JSON.stringify({ connectMs, sent: { n: Number(mib) * 1048576, sha1: h.digest('hex') }, got: JSON.parse(got) })) })
})
`

t.test('two hosts through the delay hub: the round trip takes twice the delay, bytes arrive intact, no frame is dropped', { skip: missing }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'imgdist-delayhub-'))
  const delayMs = 25
  const bed = new Testbed({ hosts: 2, upMbit: [200, 200], downMbit: 0, delayMs, workDir: work, prefix: 'imgt', subnet: '10.213.78' })
  t.teardown(() => { killLive(); bed.teardown() })
  await bed.setup()
  t.ok(bed.delayHub, 'the hub runs')
  // warm the ARP caches so the timed handshake is one round trip
  execFileSync('ip', [...bed.exec(0), 'ip', 'neigh', 'replace', bed.ip(1), 'lladdr', mac(bed, 1), 'dev', 'eth0'])
  execFileSync('ip', [...bed.exec(1), 'ip', 'neigh', 'replace', bed.ip(0), 'lladdr', mac(bed, 0), 'dev', 'eth0'])
  const server = inNs(bed.name(1), SERVER)
  const listening = await waitUntil(() => bed.listening(1, 5001), 5000, 50)
  t.ok(listening, 'the server listens')
  const r = JSON.parse(await inNs(bed.name(0), CLIENT, [bed.ip(1), '16'])) as { connectMs: number, sent: { n: number, sha1: string }, got: { n: number, sha1: string } }
  await server
  t.same(r.got, r.sent, '16 MiB arrived whole, in order (sha1 of both ends)')
  // SYN out and SYN-ACK back each wait the delay, give or take half the hub's tick (0.5 ms)
  t.ok(r.connectMs >= 2 * delayMs - 1, `the TCP handshake took ${r.connectMs.toFixed(1)} ms, at least 2 × ${delayMs} ms`)
  const line = await (bed.delayHub as NonNullable<typeof bed.delayHub>).stop()
  t.match(line, /dropped 0, write errors 0$/, `the hub's counters: ${line}`)
  const frames = Number(/frames in (\d+)/.exec(line)?.[1])
  // 16 MiB in MTU-sized frames would be 11 500 data frames; offloaded frames are larger
  t.ok(frames > 0 && frames < 16 * 1048576 / 1448, `TCP's offloaded frames cross whole (${frames} frames for 16 MiB and its ACKs)`)
})

t.test('--delay-ms with --down-mbit is refused before anything is set up', async (t) => {
  const r = spawnSync(process.execPath, [new URL('../dist/bench/swarm.js', import.meta.url).pathname, '--delay-ms', '20', '--down-mbit', '50'], { encoding: 'utf8' })
  t.equal(r.status, 2)
  t.match(r.stderr, /--delay-ms and --down-mbit cannot be used together/)
})

function mac (bed: Testbed, i: number): string {
  const j = JSON.parse(execFileSync('ip', ['-n', bed.name(i), '-j', 'link', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as Array<{ address: string }>
  return j[0]?.address ?? ''
}
